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

import re

# The weight given to the `BREAK` marker fragment; never a real weight.
BREAK_WEIGHT = -1.0
BREAK_MARKER: tuple[str, float] = ("BREAK", BREAK_WEIGHT)

ROUND_BRACKET_MULTIPLIER = 1.1
SQUARE_BRACKET_MULTIPLIER = 1 / 1.1

# One token of emphasis syntax per match; the alternatives are tried in order, so escapes
# win over brackets and `:1.5)` wins over a plain `:`.
_SYNTAX_TOKEN = re.compile(
    r"""
    \\[()\[\]\\]            # escaped bracket or backslash: a literal character
    | \\                    # a lone backslash: dropped, as in A1111
    | \(                    # open emphasis
    | \[                    # open de-emphasis
    | :(?P<weight>[+-]?[.\d]+)\)   # explicit weight closing a round bracket
    | \)                    # close emphasis
    | \]                    # close de-emphasis
    | [^\\()\[\]:]+         # plain text
    | :                     # a colon that is not an explicit weight
    """,
    re.VERBOSE,
)

_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)


def parse_prompt_attention(text: str) -> list[tuple[str, float]]:
    """Split `text` into `(fragment, weight)` pairs following A1111's emphasis rules.

    A `BREAK` keyword outside any weight becomes the fragment `BREAK_MARKER`
    (`("BREAK", -1.0)`); the whitespace around it is dropped. An empty prompt gives
    `[("", 1.0)]`.

    >>> parse_prompt_attention("an (important) word")
    [('an ', 1.0), ('important', 1.1), (' word', 1.0)]
    >>> parse_prompt_attention("a [b] (c:1.5)")
    [('a ', 1.0), ('b', 0.9090909090909091), (' ', 1.0), ('c', 1.5)]
    """
    # Fragments are [text, weight, is_break]; brackets remember where their span starts.
    fragments: list[list] = []
    open_round: list[int] = []
    open_square: list[int] = []

    def multiply_from(start: int, multiplier: float) -> None:
        for fragment in fragments[start:]:
            if not fragment[2]:
                fragment[1] *= multiplier

    for match in _SYNTAX_TOKEN.finditer(text):
        token = match.group(0)
        weight = match.group("weight")

        if token.startswith("\\"):
            fragments.append([token[1:], 1.0, False])
        elif token == "(":
            open_round.append(len(fragments))
        elif token == "[":
            open_square.append(len(fragments))
        elif weight is not None and open_round:
            explicit = _parse_weight(weight)
            if explicit is None:  # e.g. "(a:1.2.3)": keep the characters, apply the default
                fragments.append([token[:-1], 1.0, False])
                explicit = ROUND_BRACKET_MULTIPLIER
            multiply_from(open_round.pop(), explicit)
        elif token == ")" and open_round:
            multiply_from(open_round.pop(), ROUND_BRACKET_MULTIPLIER)
        elif token == "]" and open_square:
            multiply_from(open_square.pop(), SQUARE_BRACKET_MULTIPLIER)
        else:
            for index, part in enumerate(_BREAK.split(token)):
                if index > 0:
                    fragments.append([BREAK_MARKER[0], BREAK_WEIGHT, True])
                fragments.append([part, 1.0, False])

    # Brackets still open at the end apply to everything after them.
    for start in open_round:
        multiply_from(start, ROUND_BRACKET_MULTIPLIER)
    for start in open_square:
        multiply_from(start, SQUARE_BRACKET_MULTIPLIER)

    if not fragments:
        return [("", 1.0)]

    merged: list[list] = [fragments[0]]
    for fragment in fragments[1:]:
        previous = merged[-1]
        if not fragment[2] and not previous[2] and fragment[1] == previous[1]:
            previous[0] += fragment[0]
        else:
            merged.append(fragment)

    return [(fragment_text, weight) for fragment_text, weight, _ in merged]


def is_break(fragment: tuple[str, float]) -> bool:
    """True for the `BREAK` marker fragment produced by `parse_prompt_attention`."""
    return fragment[1] == BREAK_WEIGHT and fragment[0] == BREAK_MARKER[0]


def _parse_weight(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None
