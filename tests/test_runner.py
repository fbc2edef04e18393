"""The runner: any capability's job takes one road (validate → scripts → model → run → hooks → save) and
its errors are mapped in one place. A small made-up capability shows it, so every capability can rely on it."""
from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, replace

import numpy as np
import pytest
import torch
from PIL import Image

from modules.capabilities import Capability, InternalError, OutOfMemory, SaveSpec
from modules.errors import InvalidRequest, UserError
from modules.extensions import ScriptCall
from modules.generation.infotext import parse_infotext
from modules.images import read_parameters
from modules.models.refs import CHECKPOINT, ModelRef
from tests.test_extensions_fixtures import attach_extensions, make_extensions_folder  # noqa: F401


@dataclass
class SquaresRequest:
    prompt: str = "squares"
    count: int = 2
    save_images: bool = True
    fail_with: str | None = None  # "user", "bug", "oom", "interrupt", "skip": what run raises

    def validated(self) -> "SquaresRequest":
        if not isinstance(self.count, int) or not 1 <= self.count <= 4:
            raise InvalidRequest("count", f"must be between 1 and 4, got {self.count}")
        return replace(self)


@dataclass
class SquaresResult:
    request: SquaresRequest
    images: list = None
    paths: list = None


def run_squares(request: SquaresRequest, loaded, job, hooks) -> SquaresResult:
    result = SquaresResult(request, [], [])
    job.start(1, request.count)
    job.check()
    failures = {"user": UserError("squares: try fewer"), "bug": KeyError("/srv/app/modules/secret.py"),
                "oom": torch.OutOfMemoryError("CUDA out of memory"), "interrupt": None}
    if request.fail_with == "interrupt":
        job.interrupt()
        job.check()
    elif request.fail_with == "skip":
        job.skip()
        job.check()
    elif request.fail_with:
        raise failures[request.fail_with]
    seeds = list(range(100, 100 + request.count))
    hooks.process_batch(0, [request.prompt] * request.count, seeds)
    for index, seed in enumerate(seeds):
        image = Image.new("RGB", (8, 8), (seed % 256, 0, 0))
        text = f"{request.prompt}\nSeed: {seed}, Model: {loaded.info.model_name}" + "".join(
            f", {k}: {v}" for k, v in hooks.extra_infotext().items())
        save_to = SaveSpec("squares-images", seed) if request.save_images else None
        image, path = hooks.image_ready(image, text, seed, index, save_to)
        result.images.append(image)
        if path is not None:
            result.paths.append(path)
        job.report_step(index + 1)
    return result


SQUARES = Capability(
    name="squares", tab="txt2img", validate=lambda request, context: request.validated(),
    model=lambda request: ModelRef(CHECKPOINT, "tiny-sd15"), run=run_squares,
    empty_result=lambda request: SquaresResult(request, [], []),
    out_of_memory=lambda request: OutOfMemory(f"out of memory for {request.count} squares: ask for fewer"))


def test_a_capability_gets_the_scripts_hooks_and_saves_each_image_with_its_infotext(tmp_path, backend,
                                                                                   attach_extensions):
    extensions = attach_extensions(make_extensions_folder(tmp_path / "ext", builtin=False, broken=False))
    probe = next(s for s in extensions.scripts if s.title() == "Probe")
    events = sys.modules[type(probe).__module__].EVENTS
    job = backend.new_job("squares")
    result = backend.run(SQUARES, SquaresRequest(), job,
                         ScriptCall(alwayson_scripts={"probe": {"args": ["in a row", True]}}))
    assert job.state == "done" and len(result.images) == len(result.paths) == 2
    # process changed the request, process_batch and postprocess_image ran, the saved file is the final image
    with Image.open(result.paths[0]) as saved:
        first = parse_infotext(read_parameters(saved))
    assert (first["Prompt"], first["Probe"], first["Probe batch"]) == ("squares in a row", "in a row", "0 100")
    assert result.paths[0].parent.parent.name == "squares-images" and result.paths[0].name.endswith("-100.png")
    assert np.asarray(result.images[0])[0, 0].tolist() == [255 - 100, 255, 255]  # inverted
    assert np.array_equal(np.asarray(Image.open(result.paths[0]).convert("RGB")), np.asarray(result.images[0]))
    assert ("saved", result.paths[1].name) in events and ("postprocess", 2) in events


def test_a_bad_request_is_refused_naming_the_field_and_the_job_fails(backend):
    job = backend.new_job("squares")
    with pytest.raises(InvalidRequest, match="count: must be between 1 and 4"):
        backend.run(SQUARES, SquaresRequest(count=9), job)
    assert job.state == "failed"


def test_a_user_error_fails_the_job_with_that_message(backend):
    job = backend.new_job("squares")
    with pytest.raises(UserError, match="squares: try fewer"):
        backend.run(SQUARES, SquaresRequest(fail_with="user"), job)
    assert job.state == "failed" and job.error == "squares: try fewer"


def test_out_of_memory_is_the_capabilitys_message_and_the_next_job_runs(backend):
    job = backend.new_job("squares")
    with pytest.raises(OutOfMemory, match="out of memory for 2 squares: ask for fewer"):
        backend.run(SQUARES, SquaresRequest(fail_with="oom"), job)
    assert job.state == "failed"
    assert backend.run(SQUARES, SquaresRequest(save_images=False)).images


def test_a_bug_is_an_internal_error_whose_id_the_log_has(backend, caplog):
    job = backend.new_job("squares")
    with caplog.at_level(logging.ERROR), pytest.raises(InternalError) as raised:
        backend.run(SQUARES, SquaresRequest(fail_with="bug"), job)
    message = str(raised.value)
    assert raised.value.error_id in message and "secret.py" not in message and "KeyError" not in message
    assert any(raised.value.error_id in r.getMessage() and r.exc_info for r in caplog.records)
    assert job.state == "failed" and backend.manager.device_lock.waiting == 0


def test_an_interrupt_before_anything_was_made_gives_the_empty_result(backend):
    job = backend.new_job("squares")
    result = backend.run(SQUARES, SquaresRequest(fail_with="interrupt"), job)
    assert job.state == "interrupted" and result.images == []


def test_an_unknown_script_is_refused_before_any_work(backend):
    with pytest.raises(InvalidRequest, match="script_name: unknown script"):
        backend.run(SQUARES, SquaresRequest(), scripts=ScriptCall(script_name="No such script"))


def test_a_skip_that_reaches_the_runner_ends_the_job_with_nothing_made(backend):
    job = backend.new_job("squares")
    result = backend.run(SQUARES, SquaresRequest(fail_with="skip"), job)
    assert job.state == "done" and result.images == []
