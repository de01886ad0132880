"""The chat special tokens, in id order: a leaf module, so the config can count them without
importing the tokenizer."""

SPECIAL_TOKENS = [
    "<|bos|>",
    "<|eot|>",
    "<|pad|>",
    "<|system_start|>",
    "<|system_end|>",
    "<|user_start|>",
    "<|user_end|>",
    "<|assistant_start|>",
    "<|assistant_end|>",
    "<|python_start|>",
    "<|python_end|>",
    "<|output_start|>",
    "<|output_end|>",
]

# The smallest vocabulary a tokenizer can have: every special token plus the 256 bytes.
MIN_VOCAB_SIZE = len(SPECIAL_TOKENS) + 256
