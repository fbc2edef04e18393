"""A1111's "infotext": the generation parameters stored in a PNG's `parameters` text chunk.

    a red circle
    Negative prompt: blurry
    Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1234, Size: 512x512, Model hash: abcdef0123, Model: name
"""
from __future__ import annotations

import json
import re

# One "Key: value" pair; a value is either a JSON string in quotes or runs to the next comma.
_PARAM = re.compile(r'\s*(\w[\w \-/+]*):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_SIZE = re.compile(r"^(\d+)x(\d+)$")


def quote(value) -> str:
    text = str(value)
    if "," not in text and "\n" not in text and ":" not in text and '"' not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def format_infotext(prompt: str, negative_prompt: str, params: dict) -> str:
    """`params` in display order; None values are left out."""
    line = ", ".join(f"{key}: {quote(value)}" for key, value in params.items() if value is not None and value != "")
    negative = f"\nNegative prompt: {negative_prompt}" if negative_prompt else ""
    return f"{prompt}{negative}\n{line}"


def parse_infotext(text: str) -> dict:
    """Inverse of format_infotext: {"Prompt", "Negative prompt", key: value..., "Size-1", "Size-2"}."""
    *lines, last = text.strip().split("\n")
    if len(_PARAM.findall(last)) < 3:  # the last line is not a parameter line: it is part of the prompt
        lines.append(last)
        last = ""
    prompt, negative, in_negative = [], [], False
    for line in lines:
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[len("Negative prompt:"):].strip()
        (negative if in_negative else prompt).append(line)
    result: dict = {"Prompt": "\n".join(prompt), "Negative prompt": "\n".join(negative)}
    for key, value in _PARAM.findall(last):
        value = unquote(value.strip())
        size = _SIZE.match(value)
        if size:
            result[f"{key}-1"], result[f"{key}-2"] = size.group(1), size.group(2)
        result[key] = value
    return result
