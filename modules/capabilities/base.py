"""What every capability (txt2img, gan, latent, ...) is to the runner: one shape, so one runner serves all.

A capability package (modules/capabilities/<name>/) has request.py (dataclasses, validated once, errors
naming the field), run.py (a pure function of (request, loaded model, job, hooks) -> result) and exports
one or more `Capability` objects from its __init__.py. modules/capabilities/runner.py runs them."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modules.errors import UserError, internal_error_message

if TYPE_CHECKING:
    from modules.job_limits import JobLimits
    from modules.jobs import Job
    from modules.models.refs import ModelRef


class InternalError(UserError):
    """Anything that is neither the user's mistake nor an interrupt: the traceback is in the log under
    `error_id`, and that id is all the user is told (a class name or a path would tell them about the code)."""

    def __init__(self, error_id: str):
        self.error_id = error_id
        super().__init__(internal_error_message(error_id))


class OutOfMemory(UserError):
    """The device ran out of memory for this job; memory was freed and the next job can run.
    The message (from the capability) says what to make smaller."""


class GenerationFailed(UserError):
    """The model produced no usable image (NaN values, say); the message says what to try."""


@dataclass(frozen=True)
class SaveSpec:
    """Where hooks.image_ready saves an image: outputs/<folder>/YYYY-MM-DD/NNNNN-<stem>.png (A1111's names),
    below the job owner's outputs folder; `extra_text`: PNG text chunks besides the infotext."""
    folder: str                         # "txt2img-images", "txt2img-grids", "gan-images" ...
    stem: int | str                     # the seed, usually
    extra_text: dict[str, str] = field(default_factory=dict)


@dataclass
class RunContext:
    """What validation may look at besides the request: the server's limits, and the backend for lookups
    that need a model's facts (a checkpoint's text-encoder depth, say)."""
    limits: "JobLimits"
    backend: Any = None
    job: "Job | None" = None


def _no_conversion(output: Any, request: Any) -> Any:
    return output


@dataclass(frozen=True)
class Capability:
    name: str                                   # job kind: "txt2img", "gan", "gan-video", "latent-decode", ...
    tab: str                                    # which extension scripts apply: "txt2img", "gan", "latent"
    validate: Callable[[Any, RunContext], Any]  # request -> validated request (checks --max-* limits too)
    model: Callable[[Any], "ModelRef"]          # what to get from the manager for this request
    run: Callable[[Any, Any, "Job", Any], Any]  # (request, loaded, job, hooks) -> result
    empty_result: Callable[[Any], Any]          # the result of a job interrupted before it started
    out_of_memory: Callable[[Any], UserError]   # the message for an out-of-memory on this request
    # What a selected script's run() returned (a ScriptOutput, a list of images ...) as this capability's result.
    script_result: Callable[[Any, Any], Any] = _no_conversion
