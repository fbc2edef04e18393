"""A job far beyond what the device does quickly says so before it starts, with an estimate."""
from __future__ import annotations

import time

from modules.capabilities.txt2img.request import Txt2ImgRequest
from modules.job_estimate import StepTimes
from modules.jobs import Job


def request(side: int, steps: int = 20, batch_size: int = 1) -> Txt2ImgRequest:
    return Txt2ImgRequest(prompt="a red star", width=side, height=side, steps=steps, batch_size=batch_size)


def finished_job(seconds: float) -> Job:
    job = Job("txt2img")
    job.start(1, 20)
    job.finish("done")
    job.started_at, job.finished_at = 100.0, 100.0 + seconds
    return job


def test_2048_on_a_cpu_is_named_before_anything_ran():
    note = StepTimes().note("zoo-shapes", request(2048), "cpu", 32)
    assert note.startswith("A long job for a CPU: 2048×2048 × 1 is 4,096× the pixels of one 32×32 image")
    assert "try 32×32 first" in note
    assert StepTimes().note("zoo-shapes", request(32), "cpu", 32) is None  # an ordinary job says nothing
    assert StepTimes().note("zoo-shapes", request(2048), "cuda", 32) is None  # nothing learnt on a GPU: no guess


def test_after_a_job_the_estimate_is_in_minutes_and_a_lower_bound_when_scaled_up():
    times = StepTimes()
    times.record("sd", request(512), finished_job(20.0))  # 20 steps of 512² in 20 s: 1 s per step
    assert times.note("sd", request(512), "cpu", 512) is None
    note = times.note("sd", request(2048, steps=40), "cpu", 512)  # 16x the pixels, twice the steps: >= 640 s
    assert note == ("A long job for this CPU: at least 11 min (from this checkpoint's earlier jobs); "
                    "a smaller size, batch or fewer steps is faster.")
    assert times.note("other", request(512), "cpu", 512) is None  # learnt per checkpoint


def test_the_progress_bar_and_the_api_show_the_note_until_a_real_eta_comes():
    from modules.api.routes import _textinfo
    from modules.ui.common import progress_html

    job = Job("txt2img", note="A long job for a CPU: ...")
    assert "A long job for a CPU" in progress_html(job)  # queued
    job.start(1, 20)
    assert "A long job for a CPU" in progress_html(job) and "ETA" not in progress_html(job)
    assert _textinfo(job) == "Step 0/20. A long job for a CPU: ..."
    job.started_at = time.time() - 5
    job.report_step(1)
    assert "ETA" in progress_html(job) and "A long job" not in progress_html(job)
    assert _textinfo(job) == "Step 1/20"
