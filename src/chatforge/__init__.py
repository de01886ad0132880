"""chatforge: train a ChatGPT-style assistant from raw text, end to end."""

__version__ = "0.1.0"
