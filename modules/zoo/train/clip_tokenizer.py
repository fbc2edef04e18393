"""A CLIP tokenizer (vocab.json + merges.txt) built offline for the Shapes caption vocabulary.

CLIP's tokenizer is byte-level BPE where the last symbol of a word carries "</w>".
The vocabulary holds the special tokens, every byte symbol (with and without
"</w>", so any text still tokenizes) and one merge chain per caption word, built so
that each caption word becomes exactly one token. The files load with
``transformers.CLIPTokenizer.from_pretrained`` like any Stable Diffusion tokenizer.
"""
from __future__ import annotations

import json
from pathlib import Path

from modules.zoo.shapes import caption_vocabulary

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
MAX_LENGTH = 32  # longest two-shape caption is 24 tokens with BOS/EOS


def bytes_to_unicode() -> dict[int, str]:
    # Same table as OpenAI CLIP / GPT-2: printable bytes map to themselves.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def _bpe(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    symbols = list(word[:-1]) + [word[-1] + "</w>"]
    while len(symbols) > 1:
        pairs = {(a, b) for a, b in zip(symbols, symbols[1:])}
        best = min(pairs, key=lambda p: ranks.get(p, float("inf")))
        if best not in ranks:
            break
        merged, i = [], 0
        while i < len(symbols):
            if i < len(symbols) - 1 and (symbols[i], symbols[i + 1]) == best:
                merged.append(symbols[i] + symbols[i + 1])
                i += 2
            else:
                merged.append(symbols[i])
                i += 1
        symbols = merged
    return symbols


def build_vocab_and_merges(words: list[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    byte_symbols = list(bytes_to_unicode().values())
    vocab_list = byte_symbols + [s + "</w>" for s in byte_symbols]
    merges: list[tuple[str, str]] = []
    ranks: dict[tuple[str, str], int] = {}
    for word in words:
        # New merges rank after all earlier ones, so earlier words keep their single token.
        symbols = _bpe(word, ranks)
        while len(symbols) > 1:
            pair = (symbols[0], symbols[1])
            ranks[pair] = len(merges)
            merges.append(pair)
            vocab_list.append(pair[0] + pair[1])
            symbols = [pair[0] + pair[1]] + symbols[2:]
        if _bpe(word, ranks) != [word + "</w>"]:
            raise RuntimeError(f"caption word {word!r} does not become one token")
    vocab_list += [BOS, EOS]
    vocab = {}
    for token in vocab_list:
        vocab.setdefault(token, len(vocab))
    return vocab, merges


def write_tokenizer_files(folder: str | Path) -> Path:
    """Write vocab.json, merges.txt and tokenizer_config.json; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = build_vocab_and_merges(caption_vocabulary())
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    (folder / "special_tokens_map.json").write_text(json.dumps(
        {"bos_token": BOS, "eos_token": EOS, "pad_token": EOS, "unk_token": EOS}))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "CLIPTokenizer", "model_max_length": MAX_LENGTH,
        "bos_token": BOS, "eos_token": EOS, "pad_token": EOS, "unk_token": EOS,
        "do_lower_case": True, "clean_up_tokenization_spaces": True}, indent=1))
    return folder


def load_tokenizer(folder: str | Path):
    from transformers import CLIPTokenizer
    return CLIPTokenizer.from_pretrained(str(folder), local_files_only=True)
