"""The X/Y/Z plot's axes: what each one changes in a request, and how its values are written.

Values are comma-separated (quote a value that holds a comma: "a, b"). Numbers also take ranges, as in A1111:

    1-5          1, 2, 3, 4, 5
    1-10 (+3)    1, 4, 7, 10
    0-1 [5]      five values from 0 to 1: 0, 0.25, 0.5, 0.75, 1
"""
from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from io import StringIO

from modules.errors import InvalidRequest, UserError
from modules.generation.samplers import AUTOMATIC, find_schedule, schedule_labels_for, split_name
from modules.capabilities.txt2img.request import MAX_PROMPT_CHARS
from modules.user_values import shown

MAX_VALUES = 64  # per axis
_RANGE = re.compile(r"^\s*([+-]?\d+(?:\.\d*)?)\s*-\s*([+-]?\d+(?:\.\d*)?)"
                    r"(?:\s*\(\s*([+-]?\d+(?:\.\d*)?)\s*\)|\s*\[\s*(\d+)\s*\])?\s*$")


@dataclass(frozen=True)
class Axis:
    label: str                                    # shown in the dropdown and the infotext ("X Type: Steps")
    kind: str                                     # "int", "float" or "text"
    apply: Callable                               # (request, value) -> request with the value set
    caption: Callable[[object], str] | None = None  # the grid label of a value; default "Label: value"
    check: Callable | None = None                 # (values, context) -> values, normalised; raises InvalidRequest

    def label_of(self, value) -> str:
        if self.caption is not None:
            return self.caption(value)
        return f"{self.label}: {value:g}" if isinstance(value, float) else f"{self.label}: {value}"


def parse_values(text: str, kind: str, field: str) -> list:
    """The values written in an axis's text box, as numbers for "int"/"float" axes.

    Values are counted before they are made: a range such as `0-1 [100000000]` is refused by its count."""
    items = [item.strip() for row in csv.reader(StringIO(text or ""), skipinitialspace=True) for item in row]
    items = [item for item in items if item]
    if len(items) > MAX_VALUES:
        raise InvalidRequest(field, f"{len(items)} values is over the limit of {MAX_VALUES} per axis")
    values: list = []
    for item in items:
        values += _numbers(item, kind, field, MAX_VALUES - len(values)) if kind in ("int", "float") else [item]
    if not values:
        raise InvalidRequest(field, "give at least one value (comma-separated)")
    return values


def _numbers(item: str, kind: str, field: str, room: int) -> list:
    """The numbers `item` stands for; more than `room` of them is refused before any is made."""
    cast = int if kind == "int" else float
    match = _RANGE.match(item)
    if match:
        start, end, step, count = match.groups()
        start, end = float(start), float(end)
        if not (math.isfinite(start) and math.isfinite(end)):  # 400 digits parse as inf
            raise InvalidRequest(field, f"{shown(item)}: the numbers are too large")
        if count is not None:
            count = int(count) if len(count) <= 18 else None  # int() of a 5000-digit count would raise
            if count is not None and count < 1:
                raise InvalidRequest(field, f"{shown(item)}: the count in [] must be at least 1")
            n = count
        else:
            step = float(step) if step is not None else (1.0 if end >= start else -1.0)
            if step == 0 or not math.isfinite(step) or (end - start) * step < 0:
                raise InvalidRequest(field, f"{shown(item)}: the step {step:g} does not lead from {start:g} to {end:g}")
            span = (end - start) / step
            n = math.floor(span + 1e-9) + 1 if math.isfinite(span) and span < 1e12 else None
        if n is None or n > room:  # refused by its count: the list is never made
            more = "" if room == MAX_VALUES else " more"
            raise InvalidRequest(field, f"{shown(item)} makes {'too many' if n is None else n}{more} values, over the "
                                        f"limit of {MAX_VALUES} per axis")
        if count is not None:
            values = [start + (end - start) * i / max(count - 1, 1) for i in range(count)]
        else:
            values = [start + i * step for i in range(n)]
        return [int(round(v)) if cast is int else round(v, 10) for v in values]
    try:
        number = float(item)
    except ValueError:
        raise InvalidRequest(field, f"{shown(item)} is not a number") from None
    if not math.isfinite(number) or (cast is int and number != int(number)):
        raise InvalidRequest(field, f"{shown(item)} is not a {'whole ' if cast is int else ''}number")
    if room < 1:
        raise InvalidRequest(field, f"more than {MAX_VALUES} values is over the limit of {MAX_VALUES} per axis")
    return [cast(number)]


def _set(name: str):
    return lambda request, value: replace(request, **{name: value})


def _samplers(values, context) -> list:
    for value in values:
        split_name(value)  # an unknown one is refused before any picture
    return [value.strip() for value in values]


def _set_sampler(request, value):
    """The sampler; an old joined name ("DPM++ 2M Karras") brings its schedule type, and a schedule type the
    sampler does not take falls back to Automatic, as A1111 does."""
    sampler, joined = split_name(value)
    schedule = joined.label if joined is not None else request.scheduler
    if find_schedule(schedule).label not in schedule_labels_for(sampler.name):
        schedule = AUTOMATIC
    return replace(request, sampler=sampler.name, scheduler=schedule)


def _schedules(values, context) -> list:
    return [find_schedule(v).label for v in values]


def _checkpoints(values, context) -> list:
    try:
        return [context.backend.find_checkpoint_title(v) for v in values]
    except UserError as e:  # unknown or unusable: name the axis, so the API answers 422 for this field
        raise InvalidRequest(context.field, str(e)) from None


def _refiner_checkpoints(values, context) -> list:
    """Checkpoints, or "None" (A1111's first choice): no refiner in that cell."""
    named = [v for v in values if v.strip().lower() != "none"]
    titles = iter(_checkpoints(named, context))
    return ["None" if v.strip().lower() == "none" else next(titles) for v in values]


def _prompt_search(values, context) -> list:
    search = values[0]
    request = context.request
    if search not in request.prompt and search not in request.negative_prompt:
        raise InvalidRequest(context.field, f"the first value, {shown(search)}, is what gets replaced, but it is not "
                                            "in the prompt or the negative prompt")
    for text in (request.prompt, request.negative_prompt):
        # Measured before any prompt is made: 'a' replaced by 15 000 characters in a long prompt is gigabytes.
        count = text.count(search) if search else 0
        longest = max(len(text) + count * (len(value) - len(search)) for value in values)
        if longest > MAX_PROMPT_CHARS:
            raise InvalidRequest(context.field, f"a replacement makes a prompt of {longest} characters, over the "
                                                f"limit of {MAX_PROMPT_CHARS}")
    return values


def _replace_prompt(request, value):
    search = value[0]
    return replace(request, prompt=request.prompt.replace(search, value[1]),
                   negative_prompt=request.negative_prompt.replace(search, value[1]))


def _checkpoint_caption(title: str) -> str:
    return re.sub(r"\s*\[[0-9a-f]{8,10}\]$", "", title)  # "name [hash]" -> "name"


NOTHING = Axis("Nothing", "text", lambda request, value: request, caption=lambda value: "")

TXT2IMG_AXES = [
    NOTHING,
    Axis("Seed", "int", _set("seed")),
    Axis("Steps", "int", _set("steps")),
    Axis("CFG Scale", "float", _set("cfg_scale")),
    Axis("Sampler", "text", _set_sampler, caption=str, check=_samplers),
    Axis("Checkpoint", "text", _set("checkpoint"), caption=_checkpoint_caption, check=_checkpoints),
    # A value is (search, replacement); the label is the replacement.
    Axis("Prompt S/R", "text", _replace_prompt, caption=lambda value: value[1], check=_prompt_search),
    Axis("Refiner checkpoint", "text", lambda request, value: replace(
        request, refiner_checkpoint=None if value == "None" else value),
        caption=lambda value: f"Refiner: {_checkpoint_caption(value)}", check=_refiner_checkpoints),
    Axis("Refiner switch at", "float", _set("refiner_switch_at")),
    Axis("Schedule type", "text", _set("scheduler"), caption=str, check=_schedules),
    Axis("Var. seed", "int", _set("subseed")),
    Axis("Var. strength", "float", _set("subseed_strength")),
]

GAN_AXES = [
    NOTHING,
    Axis("Seed", "int", lambda request, value: replace(request, seeds=[value])),
    Axis("Truncation ψ", "float", _set("truncation_psi")),
]


def find_axis(axes: list[Axis], name, field: str) -> Axis:
    """An axis by its label (case-insensitive) or its index in the list, as A1111's API sends."""
    if isinstance(name, int) and not isinstance(name, bool) and 0 <= name < len(axes):
        return axes[name]
    text = str(name or "Nothing").strip().lower()
    for axis in axes:
        if axis.label.lower() == text or (text == "truncation psi" and axis.label == "Truncation ψ"):
            return axis
    raise InvalidRequest(field, f"unknown axis {name!r}: one of {', '.join(a.label for a in axes)}")


@dataclass
class AxisContext:
    request: object
    backend: object
    field: str


def axis_values(axis: Axis, text: str, context: AxisContext) -> list:
    """The values of one axis, checked; the single value None for Nothing."""
    if axis is NOTHING:
        return [None]
    values = parse_values(text, axis.kind, context.field)
    if axis.check is not None:
        values = axis.check(values, context)
    if axis.label == "Prompt S/R":
        values = [(values[0], v) for v in values]
    return values
