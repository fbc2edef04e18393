"""A1111's extra-network tags in a prompt: `<lora:name>`, `<lora:name:weight>`, `<lora:name:te:unet>`,
`<lora:name:unet=0.5:te=1>`. They are taken out of the text before it is encoded.

As A1111 (modules/extra_networks.py): a tag is `<`, a word (the network type), `:`, then anything up to the
next `>`; its arguments are split at `:`; `key=value` arguments are named, the rest positional. For a LoRA
the first positional is its name, the second the text-encoder weight (default 1), the third the UNet weight
(default: the text encoder's). Only the positive prompt is read for tags, as A1111 does: a tag in the
negative prompt stays there as words.

The scan is linear in the prompt's length (one pass, no backtracking), and the number of tags is bounded."""
from __future__ import annotations

import math
from dataclasses import dataclass

from modules.errors import InvalidRequest

MAX_LORA_TAGS = 16  # LoRAs one prompt may name; each is an adapter on the UNet and text encoders
MAX_WEIGHT = 20.0  # |weight|: far beyond any useful strength (A1111 users go to about ±3)
LORA_TYPES = ("lora", "lyco")  # A1111 registers "lyco" as another name for "lora"
REFUSED_TYPES = {"hypernet": "hypernetworks are not supported (A1111 dropped them too); remove the tag"}


@dataclass(frozen=True)
class LoraTag:
    """One `<lora:...>` of a prompt: what it says, as written."""
    name: str
    te_weight: float
    unet_weight: float
    text: str  # the tag itself, for messages


@dataclass(frozen=True)
class ParsedPrompt:
    text: str  # the prompt with every tag taken out: what the text encoder reads
    loras: tuple[LoraTag, ...]


def parse_prompt(prompt: str, field: str = "prompt") -> ParsedPrompt:
    """The prompt's text and its LoRA tags; an InvalidRequest naming `field` for a tag we cannot honour."""
    pieces: list[str] = []
    loras: list[LoraTag] = []
    start = 0  # the first character not yet copied to pieces
    at = prompt.find("<")
    while at != -1:
        word_end = at + 1
        while word_end < len(prompt) and (prompt[word_end].isalnum() or prompt[word_end] == "_"):
            word_end += 1
        if word_end == at + 1 or word_end >= len(prompt) or prompt[word_end] != ":":
            at = prompt.find("<", at + 1)
            continue
        close = prompt.find(">", word_end + 1)
        if close == -1:  # no `>` left: no later tag can close either
            break
        if close == word_end + 1:  # `<word:>`: A1111's pattern needs at least one character
            at = prompt.find("<", close)
            continue
        kind, args, text = prompt[at + 1:word_end], prompt[word_end + 1:close], prompt[at:close + 1]
        if kind.lower() in LORA_TYPES:
            if len(loras) == MAX_LORA_TAGS:
                raise InvalidRequest(field, f"names more than {MAX_LORA_TAGS} LoRAs: use at most {MAX_LORA_TAGS}")
            loras.append(_lora(args, text, field))
        elif kind.lower() in REFUSED_TYPES:
            raise InvalidRequest(field, f"{_short(text)}: {REFUSED_TYPES[kind.lower()]}")
        else:
            raise InvalidRequest(field, f"{_short(text)}: unknown extra network type {kind!r} "
                                        "(supported: <lora:name:weight>)")
        pieces.append(prompt[start:at])
        start = close + 1
        at = prompt.find("<", start)
    pieces.append(prompt[start:])
    return ParsedPrompt("".join(pieces), tuple(loras))


def prompt_text(prompt: str) -> str:
    """The prompt without its tags (already validated: tags that would be refused were refused then)."""
    return parse_prompt(prompt).text


def _lora(args: str, text: str, field: str) -> LoraTag:
    positional, named = [], {}
    for item in args.split(":"):
        key, sep, value = item.partition("=")
        if sep:
            named[key.strip()] = value
        else:
            positional.append(item)
    unknown = sorted(set(named) - {"te", "unet"})
    if "dyn" in named or len(positional) > 3:
        raise InvalidRequest(field, f"{_short(text)}: the dyn (rank) argument is not supported; remove it")
    if unknown:
        raise InvalidRequest(field, f"{_short(text)}: unknown argument {unknown[0]!r} (use te= and unet=)")
    if not positional or not positional[0].strip():
        raise InvalidRequest(field, f"{_short(text)}: the LoRA's name is missing (<lora:name:weight>)")
    te = _weight(positional[1], text, field) if len(positional) > 1 else 1.0
    te = _weight(named["te"], text, field) if "te" in named else te
    unet = _weight(positional[2], text, field) if len(positional) > 2 else te
    unet = _weight(named["unet"], text, field) if "unet" in named else unet
    return LoraTag(positional[0].strip(), te, unet, text)


def _weight(value: str, text: str, field: str) -> float:
    try:
        weight = float(value)
    except ValueError:
        raise InvalidRequest(field, f"{_short(text)}: weight {value.strip()[:20]!r} is not a number") from None
    if not math.isfinite(weight) or abs(weight) > MAX_WEIGHT:
        raise InvalidRequest(field, f"{_short(text)}: weight {value.strip()[:20]} must be between "
                                    f"{-MAX_WEIGHT:g} and {MAX_WEIGHT:g}")
    return weight


def _short(text: str) -> str:
    return text if len(text) <= 80 else text[:77] + "...>"
