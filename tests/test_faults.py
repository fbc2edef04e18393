"""Faults during a job: it fails (or degrades) with a clear message, nothing half-written, and the next job runs."""
from __future__ import annotations

import errno

import numpy as np
import pytest
import torch

from modules import images
from modules.capabilities import GenerationFailed, InternalError, OutOfMemory
from modules.generation import preview


def test_out_of_memory_fails_that_job_clearly_and_the_next_one_runs(backend, small_request, monkeypatch):
    with backend.manager.use("tiny-sd15") as model:
        pipe_class = type(model.pipe)
    original = pipe_class.__call__

    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(pipe_class, "__call__", oom)
    job = backend.new_job("txt2img")
    with pytest.raises(OutOfMemory, match="out of memory for 64x64 × batch size 1: try a smaller size"):
        backend.txt2img(small_request(), job)
    assert job.state == "failed"
    monkeypatch.setattr(pipe_class, "__call__", original)
    assert backend.txt2img(small_request(save_images=False)).images


def test_an_exception_inside_a_job_never_blocks_the_queue(backend, small_request, monkeypatch, caplog):
    monkeypatch.setattr("modules.capabilities.txt2img.run.encode_scheduled",
                        lambda *a, **k: (_ for _ in ()).throw(ValueError("boom")))
    for _ in range(3):
        job = backend.new_job("txt2img")
        with pytest.raises(InternalError) as raised:  # the user gets an id; the log has the error under it
            backend.txt2img(small_request(), job)
        assert job.state == "failed" and "boom" not in str(raised.value)
        assert any(raised.value.error_id in r.getMessage() and "boom" in str(r.exc_info[1]) for r in caplog.records)
    monkeypatch.undo()
    assert backend.manager.device_lock.waiting == 0
    assert backend.txt2img(small_request(save_images=False)).images


def test_a_half_precision_vae_that_gives_nan_is_retried_in_fp32(backend, small_request, monkeypatch):
    real_decode = preview.decode_latents
    calls = []

    def nan_in_half(vae, latents):
        calls.append(vae.dtype)
        decoded = real_decode(vae, latents)
        return decoded * float("nan") if len(calls) == 1 else decoded

    monkeypatch.setattr(preview, "decode_latents", nan_in_half)
    with backend.manager.use("tiny-sd15") as model:
        model.pipe.vae.to(torch.float16)
    try:
        result = backend.txt2img(small_request(save_images=False))
    finally:
        with backend.manager.use("tiny-sd15") as model:
            model.pipe.vae.to(torch.float32)
    assert calls == [torch.float16, torch.float32]
    assert np.asarray(result.images[0]).std() > 0


def test_a_nan_that_persists_is_reported_never_saved_as_a_black_image(backend, small_request, monkeypatch):
    monkeypatch.setattr(preview, "decode_latents", lambda vae, latents: torch.full((1, 3, 64, 64), float("nan")))
    outputs = backend.config.outdir
    before = set(outputs.rglob("*")) if outputs.exists() else set()
    with pytest.raises(GenerationFailed, match="NaN values .*--no-half-vae"):
        backend.txt2img(small_request(seed=9191))
    assert (set(outputs.rglob("*")) if outputs.exists() else set()) == before


def test_a_full_disk_still_returns_the_image_reports_it_and_leaves_no_partial_file(backend, small_request,
                                                                                  monkeypatch):
    real_save = images.Image.Image.save

    def disk_full(self, fp, *args, **kwargs):
        real_save(self, fp, *args, **kwargs)  # part of the file gets written...
        raise OSError(errno.ENOSPC, "No space left on device")  # ...then the disk is full

    monkeypatch.setattr(images.Image.Image, "save", disk_full)
    result = backend.txt2img(small_request(seed=31337))
    assert len(result.images) == 1 and result.paths == []
    assert "No space left on device" in result.save_errors[0]
    folder = images.output_folder(backend.config.outdir, "txt2img")
    assert not list(folder.glob("*31337*")) and not list(folder.glob(".saving-*"))
