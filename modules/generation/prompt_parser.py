"""AUTOMATIC1111's prompt emphasis syntax: `(word)`, `[word]`, `(word:1.5)`, escapes and `BREAK`.

The parser turns a prompt into fragments of text, each with the attention weight its
tokens get when the prompt is encoded (see `prompt_embeds.py`):

    (word)      weight x 1.1        ((word)) x 1.21, and so on
    [word]      weight / 1.1
    (word:1.5)  weight x 1.5
    \\( \\) \\[ \\] \\\\   the literal characters ( ) [ ] \\
    BREAK       start a new 75-token chunk here

Unbalanced brackets never fail: a bracket left open applies to the end of the prompt,
a closing one with no opener is dropped. Neighbouring fragments of equal weight merge.
"""
from __future__ import annotations

import math
import re

# The weight given to the `BREAK` marker fragment; never a real weight.
BREAK_WEIGHT = -1.0
BREAK_MARKER: tuple[str, float] = ("BREAK", BREAK_WEIGHT)

# Weights are kept within ±MAX_WEIGHT: A1111 lets 5000 nested brackets reach 1.1**5000 = inf, which
# turns the embedding, and the image, into NaN. Real prompts stay below 3.
MAX_WEIGHT = 100.0

ROUND_BRACKET_MULTIPLIER = 1.1
SQUARE_BRACKET_MULTIPLIER = 1 / 1.1

# One token of emphasis syntax per match (group 1), with the explicit weight in group 2; the alternatives are
# tried in order, so escapes win over brackets and `:1.5)` wins over a plain `:`.
_SYNTAX_TOKEN = re.compile(
    r"""
    (
      \\[()\[\]\\]            # escaped bracket or backslash: a literal character
    | \\                    # a lone backslash: dropped, as in A1111
    | \(                    # open emphasis
    | \[                    # open de-emphasis
    | :([+-]?[.\d]+)\)       # explicit weight closing a round bracket
    | \)                    # close emphasis
    | \]                    # close de-emphasis
    | [^\\()\[\]:]+         # plain text
    | :                     # a colon that is not an explicit weight
    )
    """,
    re.VERBOSE,
)

_BREAK = re.compile(r"\bBREAK\b")


def parse_prompt_attention(text: str) -> list[tuple[str, float]]:
    """Split `text` into `(fragment, weight)` pairs following A1111's emphasis rules.

    A `BREAK` keyword outside any weight becomes the fragment `BREAK_MARKER`
    (`("BREAK", -1.0)`); the whitespace around it is dropped. An empty prompt gives
    `[("", 1.0)]`. Linear in the length of `text`, whatever its brackets: it never raises, and every
    weight is a finite number within ±MAX_WEIGHT.

    >>> parse_prompt_attention("an (important) word")
    [('an ', 1.0), ('important', 1.1), (' word', 1.0)]
    >>> parse_prompt_attention("a [b] (c:1.5)")
    [('a ', 1.0), ('b', 0.9090909090909091), (' ', 1.0), ('c', 1.5)]
    """
    # First pass: the fragments, and each bracket as a span of fragment indices [start, end) with
    # its multiplier. Weights are applied in a second pass: multiplying every fragment of a span
    # when it closes would be quadratic ("(a" * 100000 took minutes).
    texts: list[str] = []
    breaks: list[bool] = []
    round_spans: list[tuple[int, int, float]] = []
    square_spans: list[tuple[int, int]] = []
    open_round: list[int] = []
    open_square: list[int] = []

    for token, weight in _SYNTAX_TOKEN.findall(text):
        first = token[0]
        if first == "\\":
            texts.append(token[1:])
            breaks.append(False)
        elif token == "(":
            open_round.append(len(texts))
        elif token == "[":
            open_square.append(len(texts))
        elif weight and open_round:
            explicit = _parse_weight(weight)
            if explicit is None:  # e.g. "(a:1.2.3)": keep the characters, apply the default
                texts.append(token[:-1])
                breaks.append(False)
                explicit = ROUND_BRACKET_MULTIPLIER
            round_spans.append((open_round.pop(), len(texts), explicit))
        elif token == ")" and open_round:
            round_spans.append((open_round.pop(), len(texts), ROUND_BRACKET_MULTIPLIER))
        elif token == "]" and open_square:
            square_spans.append((open_square.pop(), len(texts)))
        elif "BREAK" not in token:
            texts.append(token)
            breaks.append(False)
        else:
            parts = _BREAK.split(token)
            last = len(parts) - 1
            for index, part in enumerate(parts):
                # The whitespace around a BREAK goes with it.
                part = part.lstrip() if index > 0 else part
                part = part.rstrip() if index < last else part
                if index > 0:
                    texts.append(BREAK_MARKER[0])
                    breaks.append(True)
                texts.append(part)
                breaks.append(False)

    # Brackets still open at the end apply to everything after them.
    round_spans += [(start, len(texts), ROUND_BRACKET_MULTIPLIER) for start in open_round]
    square_spans += [(start, len(texts)) for start in open_square]

    if not texts:
        return [("", 1.0)]

    weights = _weights(len(texts), round_spans, square_spans)
    merged: list[tuple[list[str], float, bool]] = []
    for fragment, weight, is_break_marker in zip(texts, weights, breaks):
        if is_break_marker:
            merged.append(([BREAK_MARKER[0]], BREAK_WEIGHT, True))
        elif merged and not merged[-1][2] and merged[-1][1] == weight:
            merged[-1][0].append(fragment)  # joined once below: repeated += would be quadratic
        else:
            merged.append(([fragment], weight, False))
    return [("".join(parts), weight) for parts, weight, _ in merged]


def _weights(count: int, round_spans: list[tuple[int, int, float]], square_spans: list[tuple[int, int]]) -> list[float]:
    """Each fragment's weight: the product of the multipliers of the brackets around it, in one sweep.

    Round brackets nest among themselves (a `)` closes the latest `(`), so their products are a stack;
    square brackets only count, each dividing by 1.1. Products are kept within ±MAX_WEIGHT, so a weight is
    never inf or NaN."""
    opens: dict[int, list[tuple[int, float]]] = {}
    for start, end, multiplier in round_spans:
        if end > start:
            opens.setdefault(start, []).append((end, multiplier))
    square_delta = [0] * (count + 1)
    for start, end in square_spans:
        if end > start:
            square_delta[start] += 1
            square_delta[end] -= 1

    products, ends = [1.0], [count]
    squares = 0
    weights = []
    for index in range(count):
        while ends[-1] <= index:
            products.pop()
            ends.pop()
        if index in opens:
            spans = opens[index]
            if len(spans) > 1:
                spans.sort(key=lambda span: -span[0])  # outer spans first
            for end, multiplier in spans:
                products.append(min(max(products[-1] * multiplier, -MAX_WEIGHT), MAX_WEIGHT))
                ends.append(end)
        squares += square_delta[index]
        weight = products[-1]
        if squares:
            weight *= SQUARE_BRACKET_MULTIPLIER ** squares
        weights.append(weight)
    return weights


def is_break(fragment: tuple[str, float]) -> bool:
    """True for the `BREAK` marker fragment produced by `parse_prompt_attention`."""
    return fragment[1] == BREAK_WEIGHT and fragment[0] == BREAK_MARKER[0]


def _parse_weight(text: str) -> float | None:
    try:
        weight = float(text)
    except ValueError:
        return None
    return weight if math.isfinite(weight) else None  # "(a:999…9)" overflows to inf: not a weight
