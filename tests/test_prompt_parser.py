"""A1111 emphasis syntax: the cases from AUTOMATIC1111's own doctests, and the edges."""
from __future__ import annotations

import pytest

from modules.generation.prompt_parser import BREAK_MARKER, is_break, parse_prompt_attention


def approx_fragments(expected: list[tuple[str, float]]):
    return [(text, pytest.approx(weight)) for text, weight in expected]


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("normal text", [("normal text", 1.0)]),
        ("an (important) word", [("an ", 1.0), ("important", 1.1), (" word", 1.0)]),
        ("a (b:1.5) c", [("a ", 1.0), ("b", 1.5), (" c", 1.0)]),
        ("a (b: 0.5)", [("a ", 1.0), ("b: 0.5", 1.1)]),  # A1111 wants the number right after ':'
        ("((a))", [("a", 1.1 * 1.1)]),
        ("[a]", [("a", 1 / 1.1)]),
        ("[[a]]", [("a", 1 / 1.1 / 1.1)]),
        ("((a:1.3))", [("a", 1.3 * 1.1)]),
        ("(a [b] c)", [("a ", 1.1), ("b", 1.0), (" c", 1.1)]),
        ("(unnecessary)(parens)", [("unnecessaryparens", 1.1)]),
        ("x (y:.5)", [("x ", 1.0), ("y", 0.5)]),
        ("(a:-1)", [("a", -1.0)]),
    ],
)
def test_weights(prompt: str, expected: list[tuple[str, float]]) -> None:
    assert parse_prompt_attention(prompt) == approx_fragments(expected)


def test_a1111_long_example() -> None:
    prompt = "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky)))."
    assert parse_prompt_attention(prompt) == approx_fragments(
        [
            ("a ", 1.0),
            ("house", 1.573),
            (" ", 1.1),
            ("on", 1.0),
            (" a ", 1.1),
            ("hill", 0.55),
            (", sun, ", 1.1),
            ("sky", 1.4641),
            (".", 1.1),
        ]
    )


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("\\(a\\)", [("(a)", 1.0)]),
        ("\\(literal\\]", [("(literal]", 1.0)]),
        ("\\[a\\] \\\\ b", [("[a] \\ b", 1.0)]),
        ("(\\(a\\))", [("(a)", 1.1)]),
        ("a\\b", [("ab", 1.0)]),  # a lone backslash escapes nothing and is dropped, as in A1111
    ],
)
def test_escapes(prompt: str, expected: list[tuple[str, float]]) -> None:
    assert parse_prompt_attention(prompt) == approx_fragments(expected)


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("(a", [("a", 1.1)]),
        ("(unbalanced", [("unbalanced", 1.1)]),
        ("[a", [("a", 1 / 1.1)]),
        ("a)", [("a)", 1.0)]),
        ("a] b", [("a] b", 1.0)]),
        ("a:b", [("a:b", 1.0)]),
        ("a :1.5) b", [("a :1.5) b", 1.0)]),
        ("((a)", [("a", 1.21)]),
        ("(a:1.2.3)", [("a:1.2.3", 1.1)]),  # not a number: the text stays, the bracket still counts
    ],
)
def test_unbalanced_and_stray_syntax_is_tolerated(prompt: str, expected: list[tuple[str, float]]) -> None:
    assert parse_prompt_attention(prompt) == approx_fragments(expected)


def test_empty_prompt() -> None:
    assert parse_prompt_attention("") == [("", 1.0)]


def test_break_splits_and_eats_surrounding_spaces() -> None:
    assert parse_prompt_attention("a BREAK b") == [("a", 1.0), BREAK_MARKER, ("b", 1.0)]
    # As in A1111, the (empty) text between BREAK and a bracket is kept as a fragment.
    assert parse_prompt_attention("a, BREAK\n(b)") == [("a,", 1.0), BREAK_MARKER, ("", 1.0), ("b", 1.1)]


def test_break_needs_the_whole_word() -> None:
    assert parse_prompt_attention("BREAKING news") == [("BREAKING news", 1.0)]
    assert parse_prompt_attention("a break b") == [("a break b", 1.0)]


def test_break_inside_brackets_still_breaks() -> None:
    fragments = parse_prompt_attention("(a BREAK b)")
    assert fragments == approx_fragments([("a", 1.1), BREAK_MARKER, ("b", 1.1)])
    assert is_break(fragments[1])


def test_consecutive_breaks_are_not_merged() -> None:
    fragments = parse_prompt_attention("a BREAK BREAK b")
    assert [is_break(fragment) for fragment in fragments].count(True) == 2


def test_equal_weight_neighbours_merge() -> None:
    assert parse_prompt_attention("(a)(b) c [d][e]") == approx_fragments(
        [("ab", 1.1), (" c ", 1.0), ("de", 1 / 1.1)]
    )


# --- bounded work (issue 13): hostile prompts parse in linear time and never raise -------------------

LARGE_PROMPTS = {
    "200 KB of unclosed '(a'": "(a" * 100_000,
    "a 1 MB prompt": ("masterpiece, a photo of a (red house:1.2) on a [hill], BREAK detailed, " * 15_000)[: 1 << 20],
    "10 000 BREAKs": "word BREAK " * 10_000,
    "5000 nested round brackets": "(" * 5000 + "a" + ")" * 5000,
    "5000 nested square brackets": "[" * 5000 + "a" + "]" * 5000,
    "1 MB of spaces": " " * (1 << 20),
    "500 000 escapes": "\\(" * 500_000,
}


@pytest.mark.parametrize("prompt", LARGE_PROMPTS.values(), ids=LARGE_PROMPTS.keys())
def test_large_prompts_parse_quickly(prompt: str) -> None:
    from tests.cpu_time import parse_seconds

    seconds, fragments = parse_seconds(parse_prompt_attention, prompt)
    assert seconds < 1.0  # generous: the quadratic parser took minutes here
    assert fragments


def test_deep_nesting_keeps_a1111_weights() -> None:
    assert parse_prompt_attention("(" * 20 + "a" + ")" * 20) == approx_fragments([("a", 1.1**20)])
    fragments = parse_prompt_attention("word BREAK " * 3)
    assert [is_break(fragment) for fragment in fragments].count(True) == 3


def test_crossed_brackets_each_apply_to_their_own_span() -> None:
    # "(" and "[" close independently: b is inside both.
    assert parse_prompt_attention("(a [b) c]") == approx_fragments([("a ", 1.1), ("b", 1.0), (" c", 1 / 1.1)])


def test_weights_stay_finite_however_deep_the_brackets() -> None:
    from modules.generation.prompt_parser import MAX_WEIGHT

    assert parse_prompt_attention("(" * 5000 + "a" + ")" * 5000) == [("a", MAX_WEIGHT)]
    deep = parse_prompt_attention("(" * 5000 + "[" * 9000 + "a")
    assert deep == approx_fragments([("a", MAX_WEIGHT * (1 / 1.1) ** 9000)])
    assert parse_prompt_attention("(a:1e5)") == approx_fragments([("a:1e5", 1.1)])  # not a weight: no exponents
    assert parse_prompt_attention("(a:-100000)") == [("a", -MAX_WEIGHT)]


def test_overflowing_weight_is_not_a_number() -> None:
    assert parse_prompt_attention("(a:" + "9" * 400 + ")") == approx_fragments([("a:" + "9" * 400, 1.1)])


def test_unpaired_surrogate_does_not_raise() -> None:
    assert parse_prompt_attention("\ud800 (a)") == approx_fragments([("\ud800 ", 1.0), ("a", 1.1)])
