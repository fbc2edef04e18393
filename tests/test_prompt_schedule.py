"""Prompt editing and alternation (modules/generation/prompt_schedule.py) against A1111's documented examples."""
import pytest

from modules.errors import InvalidRequest
from modules.generation.prompt_schedule import MAX_EDIT_DEPTH, MAX_EDITS, prompt_schedule, text_at
from tests.cpu_time import parse_seconds


def alternating(*texts, steps=10):
    return [(step, texts[(step - 1) % len(texts)]) for step in range(1, steps + 1)]


# A1111's get_learned_conditioning_prompt_schedules docstring (modules/prompt_parser.py), 10 steps.
A1111_EXAMPLES = [
    ("test", [(10, "test")]),
    ("a [b:3]", [(3, "a "), (10, "a b")]),
    ("a [b: 3]", [(3, "a "), (10, "a b")]),
    ("a [[[b]]:2]", [(2, "a "), (10, "a [[b]]")]),
    ("[(a:2):3]", [(3, ""), (10, "(a:2)")]),
    ("a [b : c : 1] d", [(1, "a b  d"), (10, "a  c  d")]),
    ("a[b:[c:d:2]:1]e", [(1, "abe"), (2, "ace"), (10, "ade")]),
    ("a [unbalanced", [(10, "a [unbalanced")]),
    ("a [b:.5] c", [(5, "a  c"), (10, "a b c")]),
    ("((a][:b:c [d:3]", [(3, "((a][:b:c "), (10, "((a][:b:c d")]),
    ("[a|(b:1.1)]", alternating("a", "(b:1.1)")),
    ("[fe|]male", alternating("female", "male")),
    ("[fe|||]male", alternating("female", "male", "male", "male")),
    # The header comment's example, at 100 steps.
    ("fantasy landscape with a [mountain:lake:0.25] and [an oak:a christmas tree:0.75][ in foreground::0.6]"
     "[: in background:0.25] [shoddy:masterful:0.5]", None),
]


@pytest.mark.parametrize("prompt, expected", [case for case in A1111_EXAMPLES if case[1] is not None])
def test_a1111_examples(prompt, expected):
    assert prompt_schedule(prompt, 10) == expected


def test_a1111_landscape_example_at_100_steps():
    prompt = A1111_EXAMPLES[-1][0]
    assert prompt_schedule(prompt, 100) == [
        (25, "fantasy landscape with a mountain and an oak in foreground shoddy"),
        (50, "fantasy landscape with a lake and an oak in foreground in background shoddy"),
        (60, "fantasy landscape with a lake and an oak in foreground in background masterful"),
        (75, "fantasy landscape with a lake and an oak in background masterful"),
        (100, "fantasy landscape with a lake and a christmas tree in background masterful"),
    ]


def test_hires_second_pass_continues_the_timeline():
    # A1111's docstring with hires_steps=10: fractions 1..2 and step numbers past the first pass.
    assert prompt_schedule("a [b:.5] c", 10, first_pass_steps=10) == [(10, "a b c")]
    assert prompt_schedule("a [b:1.5] c", 10, first_pass_steps=10) == [(5, "a  c"), (10, "a b c")]
    assert prompt_schedule("a [b:13] c", 10, first_pass_steps=10) == [(3, "a  c"), (10, "a b c")]


@pytest.mark.parametrize("prompt, expected", [
    ("[cat:dog:0.5]", [(5, "cat"), (10, "dog")]),
    ("[cat:dog:3]", [(3, "cat"), (10, "dog")]),
    ("[cat::3]", [(3, "cat"), (10, "")]),
    ("[cat:dog:1.0]", [(10, "cat")]),  # a decimal point: a fraction, the whole run
    ("[cat:dog:0]", [(10, "dog")]),
    ("[cat:dog:1e999]", [(10, "cat")]),  # "inf" steps: clamped, not an overflow
    ("[cat:dog:-2]", [(10, "dog")]),
    ("[(cat:1.2):dog BREAK bird:2]", [(2, "(cat:1.2)"), (10, "dog BREAK bird")]),
    ("[[cat|dog]:bird:4]", [(1, "cat"), (2, "dog"), (3, "cat"), (4, "dog"), *[(s, "bird") for s in range(5, 11)]]),
    ("[a|[b:c:2]]", [(1, "a"), (2, "b"), (3, "a"), (4, "c"), (5, "a"), (6, "c"), (7, "a"), (8, "c"), (9, "a"),
                     (10, "c")]),
])
def test_editing_cases(prompt, expected):
    assert prompt_schedule(prompt, 10) == expected


@pytest.mark.parametrize("prompt", [
    r"\[cat:dog:3\]",  # escaped: literal brackets
    "[cat]",  # de-emphasis, not editing
    "[cat:dog]",  # no number: text
    "(cat:dog:3)",  # round brackets never schedule
    "a | b [c:d:3]",  # a `|` outside an alternation: A1111 keeps the whole prompt as text
    "[a|b:3]",
    "[c:d:3] trailing \\",
])
def test_not_scheduled(prompt):
    assert prompt_schedule(prompt, 10) == [(10, prompt)]


def test_escapes_stay_in_the_scheduled_text():
    assert prompt_schedule(r"\[x\] [a:b:5]", 10) == [(5, r"\[x\] a"), (10, r"\[x\] b")]


def test_text_at_uses_a1111s_step_rule():
    schedule = prompt_schedule("[cat:dog:5]", 10)
    # A1111's reconstruct_cond_batch: the 0-based step i takes the first entry with i <= end_step.
    assert [text_at(schedule, i) for i in range(10)] == ["cat"] * 6 + ["dog"] * 4
    alternation = prompt_schedule("[a|b]", 4)
    assert [text_at(alternation, i) for i in range(4)] == ["a", "a", "b", "a"]


@pytest.mark.parametrize("prompt", [
    "[" * 100_000 + "x" + "]" * 100_000,
    "(" * 100_000 + "x:1.1" + ")" * 100_000,
    "[" * 100_000,
    "]" * 50_000 + "[" * 50_000,
    "[a:" * 50_000 + "3]" * 50_000,
    "[a|" * 50_000,
    "\\[" * 100_000 + "[a:b:2]",
    "[" + " " * 100_000 + ":" + " " * 100_000 + "x]",
])
def test_hostile_prompts_parse_fast_or_are_refused(prompt):
    def schedule_or_refusal():
        try:
            return prompt_schedule(prompt, 150)
        except InvalidRequest as e:
            return e

    seconds, result = parse_seconds(schedule_or_refusal)
    if isinstance(result, InvalidRequest):
        assert result.field == "prompt"
    else:
        assert len(result) <= 150
    assert seconds < 2.0  # this thread's CPU time: linear work, whatever else the machine runs


def test_too_many_or_too_deep_edits_are_refused_naming_the_field():
    with pytest.raises(InvalidRequest, match="negative_prompt") as e:
        prompt_schedule("[a:b:3]" * (MAX_EDITS + 1), 20, field="negative_prompt")
    assert e.value.field == "negative_prompt"
    deep = "[a:" * (MAX_EDIT_DEPTH + 1) + "x" + ":3]" * (MAX_EDIT_DEPTH + 1)
    with pytest.raises(InvalidRequest, match="deep"):
        prompt_schedule(deep, 20)
    assert len(prompt_schedule("[a:" * MAX_EDIT_DEPTH + "x" + ":3]" * MAX_EDIT_DEPTH, 20)) == 2


def test_alternation_texts_are_bounded():
    long_options = "[" + "|".join(f"{i:02d} " * 3000 for i in range(30)) + "]"
    with pytest.raises(InvalidRequest, match="characters"):
        prompt_schedule(long_options, 150)
