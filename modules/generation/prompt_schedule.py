"""A1111's prompt editing and alternation: which prompt text the sampler is conditioned on at each step.

    [from:to:when]   `from` until step `when`, then `to`
    [to:when]        nothing, then `to` from step `when`
    [from::when]     `from` until step `when`, then nothing
    [a|b|c]          a at step 1, b at step 2, c at step 3, a at step 4 ...

`when` is a number: with a decimal point it is a fraction of the steps (`0.25` of 20 steps: step 5),
without one a step number (`5`), as A1111 ≥ 1.6 counts ("use_old_scheduling" off). For hires fix's second
pass the timeline continues: `1.5` is half-way through the second pass, a step number counts the first
pass's steps too. The constructs nest and mix with emphasis `(x:1.2)`, `[x]` and BREAK, which stay in the
text for the encoder (prompt_parser.py). A prompt whose brackets do not form these constructs keeps them as
text; a `|` outside an alternation makes the whole prompt plain text, as A1111's grammar does.

`prompt_schedule` gives A1111's `get_learned_conditioning_prompt_schedules` for one prompt: a list of
(end_step, text); step index i (0-based) uses the first entry with i <= end_step.

The parser is one pass over the characters with an explicit stack (no regex backtracking, no recursion over
brackets), so 100 000 nested brackets take milliseconds. The work that follows it is bounded: at most
MAX_EDITS constructs nested at most MAX_EDIT_DEPTH deep, and MAX_SCHEDULE_CHARS characters of distinct texts;
beyond that the prompt is refused naming its field.
"""
from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field

from modules.errors import InvalidRequest

MAX_EDITS = 200
"""Most editing/alternation constructs in one prompt (real prompts use a handful)."""
MAX_EDIT_DEPTH = 16
"""Most constructs nested inside one another."""
MAX_SCHEDULE_CHARS = 200_000
"""Most characters over a prompt's distinct texts (ten 20 000-character prompts): every distinct text is
tokenized and encoded once, so this bounds the text encoder's work for one prompt."""

# lark's SIGNED_NUMBER as A1111's grammar uses it, with the whitespace its rule allows around it.
_WHEN = re.compile(r"\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*")
_SPECIAL = re.compile(r"[\\\[\]():|]")  # the characters the grammar gives a meaning; the rest is text
_BRACKETS = {"[": "]", "(": ")"}
_CLOSERS = {"]": "[", ")": "("}


class _ParseFailed(Exception):
    """The prompt is not in A1111's grammar (a `|` outside an alternation, a lone trailing backslash):
    A1111 then uses it whole, unscheduled."""


@dataclass
class _Frame:
    kind: str  # "[", "(" or "" for the top level
    start: int
    colons: list[int] = field(default_factory=list)
    pipes: list[int] = field(default_factory=list)
    tainted: bool = False  # holds a bracket that is text: it cannot be a construct itself


@dataclass
class _Edit:
    """A scheduled `[from:to:when]` (branches: before, after) or an alternation (branches: the options)."""
    start: int  # the opening bracket
    end: int  # one past the closing bracket
    branches: list[tuple[int, int]]  # spans of the prompt; a scheduled one's `before` may be empty (a, a)
    when: str | None  # the number as written, for a scheduled edit; None for an alternation
    children: list[list["_Edit"]] = field(default_factory=list)  # per branch, the edits directly inside
    step: int = 0  # `when` as a step of this schedule


def prompt_schedule(prompt: str, steps: int, first_pass_steps: int | None = None,
                    field: str = "prompt") -> list[tuple[int, str]]:
    """[(end_step, text), ...] for `prompt` sampled in `steps` steps, the last end_step being `steps`.

    `first_pass_steps`: this is hires fix's second pass of `steps` steps after a first pass of that many
    (A1111's hires_steps: the whole numbers count from the first pass, fractions run 1 to 2 here).

    >>> prompt_schedule("a [b:c:0.5] d", 10)
    [(5, 'a b d'), (10, 'a c d')]
    >>> prompt_schedule("[a|b]", 3)
    [(1, 'a'), (2, 'b'), (3, 'a')]
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if "[" not in prompt:  # no construct without a square bracket: the common case, at once
        return [(steps, prompt)]
    try:
        edits = _parse(prompt)
    except _ParseFailed:
        return [(steps, prompt)]
    if not edits:
        return [(steps, prompt)]
    if len(edits) > MAX_EDITS:
        raise InvalidRequest(field, f"has {len(edits)} prompt editing or alternation brackets; at most {MAX_EDITS}")
    top = _nest(edits, field)

    int_offset, fraction_offset = (first_pass_steps, 1.0) if first_pass_steps is not None else (0, 0.0)
    ends = {steps}
    for edit in edits:
        if edit.when is None:
            ends.update(range(1, steps + 1))
            continue
        value = float(edit.when)
        value = (value - fraction_offset) * steps if "." in edit.when else value - int_offset
        edit.step = int(max(min(value, steps), -1.0))  # clamped before int(): "1e999" is inf
        if edit.step >= 1:
            ends.add(edit.step)

    schedule, seen, characters = [], set(), 0
    for end in sorted(ends):
        text = _render(prompt, 0, len(prompt), top, end)
        if text not in seen:
            seen.add(text)
            characters += len(text)
            if characters > MAX_SCHEDULE_CHARS:
                raise InvalidRequest(field, f"gives over {MAX_SCHEDULE_CHARS} characters of different prompts over "
                                            f"its {steps} steps (prompt editing/alternation): simplify it")
        schedule.append((end, text))
    return schedule


def text_at(schedule: list[tuple[int, str]], step_index: int) -> str:
    """The text for the 0-based `step_index`, as A1111's reconstruct_cond_batch picks it."""
    ends = [end for end, _ in schedule]
    index = bisect.bisect_left(ends, step_index)
    return schedule[min(index, len(schedule) - 1)][1]


def _parse(prompt: str) -> list[_Edit]:
    """Every valid editing/alternation construct of `prompt`, in order of their closing brackets."""
    stack = [_Frame("", 0)]
    edits: list[_Edit] = []
    position, length = 0, len(prompt)
    while True:
        match = _SPECIAL.search(prompt, position)
        if match is None:
            break
        index = match.start()
        char = prompt[index]
        position = index + 1
        top = stack[-1]
        if char == "\\":
            if index + 1 >= length or prompt[index + 1] == "\n":
                raise _ParseFailed  # lark's plain text needs a character after a backslash
            position = index + 2
        elif char in _BRACKETS:
            stack.append(_Frame(char, index))
        elif char == ":":
            top.colons.append(index)
        elif char == "|":
            top.pipes.append(index)
        elif top.kind != _CLOSERS[char]:
            top.tainted = True  # a closing bracket with no opener here: text, as A1111's stray brackets
        else:
            stack.pop()
            _close(prompt, top, index, stack[-1], edits)
    while len(stack) > 1:  # brackets left open: text
        frame = stack.pop()
        _invalid(frame, stack[-1])
    if stack[0].pipes:
        raise _ParseFailed
    return edits


def _close(prompt: str, frame: _Frame, close: int, parent: _Frame, edits: list[_Edit]) -> None:
    if frame.tainted:
        _invalid(frame, parent)
    elif frame.kind == "(":
        if frame.pipes or len(frame.colons) > 1:
            _invalid(frame, parent)
    elif frame.pipes:
        if frame.colons:
            _invalid(frame, parent)
        else:
            bounds = [frame.start, *frame.pipes, close]
            edits.append(_Edit(frame.start, close + 1, [(a + 1, b) for a, b in zip(bounds, bounds[1:])], None))
    elif frame.colons:
        last = frame.colons[-1]
        number = _WHEN.fullmatch(prompt, last + 1, close)
        if len(frame.colons) > 2 or number is None:
            _invalid(frame, parent)
        elif len(frame.colons) == 2:
            first = frame.colons[0]
            edits.append(_Edit(frame.start, close + 1, [(frame.start + 1, first), (first + 1, last)], number[1]))
        else:
            edits.append(_Edit(frame.start, close + 1, [(frame.start + 1, frame.start + 1), (frame.start + 1, last)],
                               number[1]))
    # else: plain [word] de-emphasis, kept as text for the emphasis parser


def _invalid(frame: _Frame, parent: _Frame) -> None:
    """`frame`'s brackets are text. Only the top level may hold such stray brackets (A1111's grammar), so
    the enclosing bracket is not a construct either; a `|` left outside an alternation fails the parse."""
    if frame.pipes:
        raise _ParseFailed
    if parent.kind:
        parent.tainted = True


def _nest(edits: list[_Edit], field: str) -> list[_Edit]:
    """Each edit under the branch of the edit it sits in; returns the outermost ones, in order."""
    edits.sort(key=lambda edit: edit.start)
    top: list[_Edit] = []
    open_edits: list[_Edit] = []
    for edit in edits:
        while open_edits and open_edits[-1].end <= edit.start:
            open_edits.pop()
        if not open_edits:
            top.append(edit)
        else:
            parent = open_edits[-1]
            if not parent.children:
                parent.children = [[] for _ in parent.branches]
            branch = bisect.bisect_right([start for start, _ in parent.branches], edit.start) - 1
            parent.children[branch].append(edit)
        open_edits.append(edit)
        if len(open_edits) > MAX_EDIT_DEPTH:
            raise InvalidRequest(field, f"nests prompt editing or alternation brackets over {MAX_EDIT_DEPTH} deep")
    return top


def _render(prompt: str, start: int, end: int, edits: list[_Edit], step: int) -> str:
    """prompt[start:end] with each edit replaced by its branch at `step` (recursion bounded by MAX_EDIT_DEPTH)."""
    pieces, position = [], start
    for edit in edits:
        pieces.append(prompt[position:edit.start])
        if edit.when is None:
            branch = (step - 1) % len(edit.branches)
        else:
            branch = 0 if step <= edit.step else 1
        branch_start, branch_end = edit.branches[branch]
        children = edit.children[branch] if edit.children else []
        pieces.append(_render(prompt, branch_start, branch_end, children, step))
        position = edit.end
    pieces.append(prompt[position:end])
    return "".join(pieces)
