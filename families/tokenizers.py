"""Tokenizers built in memory (character level), so synthetic pipelines never touch a model hub."""
from __future__ import annotations

import string

from transformers import CLIPTokenizer, Qwen2Tokenizer, T5Tokenizer

_SYMBOLS = string.ascii_lowercase + string.digits + string.punctuation

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}{% endif %}"
)


def clip_tokenizer(max_length: int = 77) -> CLIPTokenizer:
    """CLIP BPE tokenizer over single characters (ids below 100)."""
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in _SYMBOLS:
        vocab.setdefault(ch, len(vocab))
        vocab.setdefault(ch + "</w>", len(vocab))
    tok = CLIPTokenizer(vocab=vocab, merges=[])
    tok.model_max_length = max_length
    return tok


def t5_tokenizer(max_length: int = 512) -> T5Tokenizer:
    """T5 unigram tokenizer over single characters (ids below 100)."""
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    pieces += [("\u2581" + ch, -1.0) for ch in string.ascii_lowercase]
    pieces += [(ch, -2.0) for ch in _SYMBOLS]
    tok = T5Tokenizer(vocab=pieces, extra_ids=0)
    tok.model_max_length = max_length
    return tok


def _byte_symbols() -> list[str]:
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    symbols = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in symbols:
            symbols[b] = chr(256 + extra)
            extra += 1
    return [symbols[b] for b in range(256)]


def qwen_tokenizer(max_length: int = 1024) -> Qwen2Tokenizer:
    """Byte-level Qwen2 tokenizer with a chat template (ids below 300)."""
    tok = Qwen2Tokenizer(vocab={sym: i for i, sym in enumerate(_byte_symbols())}, merges=[])
    tok.add_special_tokens({"additional_special_tokens": [
        "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<think>", "</think>"]})
    tok.chat_template = CHAT_TEMPLATE
    tok.model_max_length = max_length
    return tok
