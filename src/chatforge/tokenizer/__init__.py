"""Byte-level BPE tokenizers (bpe), token shards for training (shards), and their pipeline stages (stage).

The chat template (special tokens around turns) builds on `SPECIAL_TOKENS` and `Tokenizer.special_id`.
"""

from chatforge.tokenizer.bpe import SPECIAL_TOKENS, Tokenizer, load_tokenizer, train_bpe

__all__ = ["SPECIAL_TOKENS", "Tokenizer", "load_tokenizer", "train_bpe"]
