"""Jobs never change the cached pipeline they share: the sampler lives in a per-job view, and the VAE's
fp32 retry runs on a copy. So one job's sampler or precision can never leak into another's."""
from __future__ import annotations

import numpy as np
import torch

from modules.capabilities.pipeline_view import pipeline_view
from modules.generation import preview


def images_of(result) -> np.ndarray:
    """The job's own images (a batch's grid, first, is not one of them)."""
    return np.stack([np.asarray(image) for image in result.images[result.index_of_first_image:]])


def test_a_job_leaves_the_cached_pipelines_scheduler_untouched(backend, small_request):
    with backend.manager.use("tiny-sd15") as model:
        scheduler = model.pipe.scheduler
        config, state = dict(scheduler.config), dict(vars(scheduler))
    backend.txt2img(small_request(sampler="DPM++ 2M Karras", save_images=False))
    with backend.manager.use("tiny-sd15") as model:
        assert model.pipe.scheduler is scheduler
        assert dict(scheduler.config) == config
        assert vars(scheduler).keys() == state.keys() and all(
            vars(scheduler)[k] is v or (not torch.is_tensor(v) and vars(scheduler)[k] == v) for k, v in state.items())


def test_samplers_back_to_back_give_the_images_each_gives_alone(backend, small_request):
    def run(sampler):
        return images_of(backend.txt2img(small_request(sampler=sampler, batch_size=2, steps=4, save_images=False)))

    heun_first = run("Heun")
    euler_a, dpm, heun, euler_a_again = run("Euler a"), run("DPM++ 2M Karras"), run("Heun"), run("Euler a")
    assert np.array_equal(euler_a, euler_a_again) and np.array_equal(heun, heun_first)
    assert not np.array_equal(euler_a, dpm)


def test_a_pipeline_view_shares_the_modules_and_keeps_its_own_scheduler(backend):
    with backend.manager.use("tiny-sd15") as model:
        pipe = model.pipe
        scheduler = pipe.scheduler
        own = type(scheduler).from_config(scheduler.config)
        view = pipeline_view(pipe, scheduler=own)
        assert view.scheduler is own and pipe.scheduler is scheduler
        assert view.unet is pipe.unet and view.vae is pipe.vae and view.text_encoder is pipe.text_encoder
        assert pipe.config["scheduler"] == view.config["scheduler"]  # same class: the config names it alike


def test_the_fp32_retry_never_changes_the_shared_vae(backend, small_request, monkeypatch):
    real_decode = preview.decode_latents
    seen = []

    with backend.manager.use("tiny-sd15") as model:
        shared = model.pipe.vae

    def nan_in_half(vae, latents):
        seen.append((vae is shared, vae.dtype, shared.dtype))
        decoded = real_decode(vae, latents)
        return decoded * float("nan") if vae.dtype == torch.float16 else decoded

    monkeypatch.setattr(preview, "decode_latents", nan_in_half)
    shared.to(torch.float16)
    try:
        result = backend.txt2img(small_request(save_images=False))
        assert seen == [(True, torch.float16, torch.float16), (False, torch.float32, torch.float16)]
        assert np.asarray(result.images[0]).std() > 0
    finally:
        shared.to(torch.float32)
