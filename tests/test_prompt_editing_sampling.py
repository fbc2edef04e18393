"""Prompt editing and alternation reach the denoiser at the right steps: every UNet call's conditioning is
recorded (a forward pre-hook) and compared with the prompts encoded on their own, in txt2img (first- and
second-order samplers, SD 1.x and SDXL), img2img and hires fix's second pass, negative prompts included."""
from __future__ import annotations

from contextlib import contextmanager

import pytest
import torch
from PIL import Image

from modules.capabilities.img2img import IMG2IMG, Img2ImgRequest
from modules.errors import InvalidRequest
from modules.generation.prompt_embeds import encode_prompts


@contextmanager
def recorded_calls(unet):
    calls = []

    def record(module, args, kwargs):
        hidden = kwargs.get("encoder_hidden_states", args[2] if len(args) > 2 else None)
        added = kwargs.get("added_cond_kwargs") or {}
        text_embeds = added.get("text_embeds")
        calls.append((hidden.detach().clone(), None if text_embeds is None else text_embeds.detach().clone()))

    handle = unet.register_forward_pre_hook(record, with_kwargs=True)
    try:
        yield calls
    finally:
        handle.remove()


def conditioning(pipe, prompt: str, negative: str):
    """What the UNet gets for one prompt pair with classifier-free guidance: [negative, positive]."""
    with torch.no_grad():
        e = encode_prompts(pipe, [prompt], [negative])
    hidden = torch.cat([e["negative_prompt_embeds"], e["prompt_embeds"]])
    pooled = None
    if "pooled_prompt_embeds" in e:
        pooled = torch.cat([e["negative_pooled_prompt_embeds"], e["pooled_prompt_embeds"]])
    return hidden, pooled


def which(calls, pipe, options: dict[str, tuple[str, str]]) -> list[str]:
    """For each recorded call, the name of the option (prompt, negative) it was conditioned on."""
    expected = {name: conditioning(pipe, *pair) for name, pair in options.items()}
    names = []
    for hidden, pooled in calls:
        matches = [name for name, (h, p) in expected.items()
                   if h.shape == hidden.shape and torch.allclose(h, hidden, atol=1e-5)
                   and (p is None or torch.allclose(p, pooled, atol=1e-5))]
        assert len(matches) == 1, matches
        names.append(matches[0])
    return names


@pytest.mark.parametrize("prompt, steps, expected", [
    ("a [cat:dog:0.5]", 10, ["cat"] * 6 + ["dog"] * 4),  # A1111: step index i uses the entry with i <= 5
    ("a [cat:dog:3]", 10, ["cat"] * 4 + ["dog"] * 6),
    ("a [cat|dog]", 5, ["cat", "cat", "dog", "cat", "dog"]),
    ("a [[cat|dog]:bird:2]", 5, ["cat", "cat", "dog", "bird", "bird"]),
])
def test_txt2img_switches_the_conditioning_at_the_steps(backend, small_request, prompt, steps, expected):
    tiny = backend.manager.load("tiny-sd15")
    with recorded_calls(tiny.pipe.unet) as calls:
        backend.txt2img(small_request(prompt=prompt, negative_prompt="", steps=steps, sampler="Euler",
                                      save_images=False), backend.new_job("txt2img"))
    options = {name: (f"a {name}", "") for name in ("cat", "dog", "bird")}
    assert which(calls, tiny.pipe, options) == expected


def test_negative_prompts_are_scheduled_too(backend, small_request):
    tiny = backend.manager.load("tiny-sd15")
    with recorded_calls(tiny.pipe.unet) as calls:
        backend.txt2img(small_request(prompt="[a|b]", negative_prompt="[blurry:sharp:2]", steps=4, sampler="Euler",
                                      save_images=False), backend.new_job("txt2img"))
    options = {"a blurry": ("a", "blurry"), "b blurry": ("b", "blurry"), "a sharp": ("a", "sharp"),
               "b sharp": ("b", "sharp")}
    assert which(calls, tiny.pipe, options) == ["a blurry", "a blurry", "b blurry", "a sharp"]


def test_both_calls_of_a_second_order_step_share_its_conditioning(backend, small_request):
    tiny = backend.manager.load("tiny-sd15")
    with recorded_calls(tiny.pipe.unet) as calls:
        backend.txt2img(small_request(prompt="a [cat:dog:2]", negative_prompt="", steps=4, sampler="Heun",
                                      save_images=False), backend.new_job("txt2img"))
    # Heun: 2 calls per step, one for the last: steps 0 0 1 1 2 2 3; steps 0-2 are "cat" (i <= 2).
    options = {name: (f"a {name}", "") for name in ("cat", "dog")}
    assert which(calls, tiny.pipe, options) == ["cat"] * 6 + ["dog"]


def test_sdxl_switches_both_encoders_and_the_pooled_embedding(backend, small_request):
    tiny = backend.manager.load("tiny-sdxl")
    with recorded_calls(tiny.pipe.unet) as calls:
        backend.txt2img(small_request(prompt="a [cat|dog]", negative_prompt="", steps=4, sampler="Euler",
                                      checkpoint="tiny-sdxl", save_images=False), backend.new_job("txt2img"))
    assert all(pooled is not None for _, pooled in calls)
    options = {name: (f"a {name}", "") for name in ("cat", "dog")}
    assert which(calls, tiny.pipe, options) == ["cat", "cat", "dog", "cat"]


def test_img2img_counts_from_the_first_step_run_of_a_schedule_for_all_steps(backend):
    tiny = backend.manager.load("tiny-sd15")
    request = Img2ImgRequest(prompt="a [cat:dog:3]", steps=10, denoising_strength=0.5, sampler="Euler",
                             width=64, height=64, seed=1, checkpoint="tiny-sd15", save_images=False,
                             init_images=[Image.new("RGB", (64, 64), "red")])
    with recorded_calls(tiny.pipe.unet) as calls:
        backend.run(IMG2IMG, request, backend.new_job("img2img"))
    options = {name: (f"a {name}", "") for name in ("cat", "dog")}
    assert which(calls, tiny.pipe, options) == ["cat"] * 4 + ["dog"]  # 5 of 10 steps run


def test_hires_second_pass_continues_the_timeline(backend, small_request):
    tiny = backend.manager.load("tiny-sd15")
    with recorded_calls(tiny.pipe.unet) as calls:
        backend.txt2img(small_request(prompt="a [cat:dog:1.25]", negative_prompt="", steps=4, sampler="Euler",
                                      enable_hr=True, hr_scale=1.5, hr_second_pass_steps=8, denoising_strength=0.5,
                                      hr_upscaler="Latent", save_images=False), backend.new_job("txt2img"))
    options = {name: (f"a {name}", "") for name in ("cat", "dog")}
    # First pass: 1.25 of 4 steps is past its end, all "cat"; second pass: 0.25 of 8 = step 2 of its 4 run.
    assert which(calls, tiny.pipe, options) == ["cat"] * 4 + ["cat"] * 3 + ["dog"]


def test_a_hostile_prompt_is_refused_naming_the_field(backend, small_request):
    with pytest.raises(InvalidRequest) as e:
        backend.txt2img(small_request(negative_prompt="[a:b:3]" * 500), backend.new_job("txt2img"))
    assert e.value.field == "negative_prompt"


def test_without_classifier_free_guidance_only_the_prompt_is_switched(backend, small_request):
    tiny = backend.manager.load("tiny-sd15")
    with recorded_calls(tiny.pipe.unet) as calls:
        backend.txt2img(small_request(prompt="a [cat:dog:1]", negative_prompt="", steps=3, sampler="Euler",
                                      cfg_scale=1.0, save_images=False), backend.new_job("txt2img"))
    with torch.no_grad():
        cat, dog = (encode_prompts(tiny.pipe, [f"a {name}"], [""])["prompt_embeds"] for name in ("cat", "dog"))
    assert [hidden.shape[0] for hidden, _ in calls] == [1, 1, 1]  # no negative half
    assert [torch.allclose(hidden, cat, atol=1e-5) for hidden, _ in calls] == [True, True, False]
    assert torch.allclose(calls[2][0], dog, atol=1e-5)


@pytest.fixture(scope="module")
def shapes_backend(tmp_path_factory):
    from modules.backend import Backend, BackendConfig
    from modules.devices import device_config
    from modules.paths import MODELS_DIR

    if not (MODELS_DIR / "Stable-diffusion" / "zoo-shapes" / "model_index.json").exists():
        pytest.skip("the built-in zoo-shapes model is not here")
    work = tmp_path_factory.mktemp("shapes-editing")
    return Backend(BackendConfig(models_dir=MODELS_DIR, outdir=work / "outputs", cache_dir=work / "cache",
                                 devices=device_config("cpu"), offline=True))


@pytest.mark.parametrize("prompt, colours, mixed", [
    ("a [red:blue:2] circle on a white background", {"blue"}, False),  # blue from step 3 of 20: blue
    ("a [red:blue:18] circle on a white background", {"red"}, False),  # red until step 18: the colour is set by then
    # Alternating: a mix on one seed at least; on the others the colour of the last steps (blue at step 20), never
    # the first part's red alone.
    ("a [red|blue] circle on a white background", {"purple", "magenta", "blue"}, True),
])
def test_the_built_in_model_draws_what_the_schedule_says(shapes_backend, prompt, colours, mixed):
    import numpy as np

    from modules.capabilities.txt2img.request import Txt2ImgRequest
    from tests.test_zoo_builtin_txt2img import dominant_foreground_colour

    drawn = []
    for seed in (0, 1):
        result = shapes_backend.txt2img(Txt2ImgRequest(prompt=prompt, negative_prompt="", steps=20, cfg_scale=5,
                                                       width=32, height=32, seed=seed, sampler="Euler",
                                                       checkpoint="zoo-shapes", save_images=False))
        pixels = np.asarray(result.images[0].convert("RGB")).astype(float)
        drawn.append(dominant_foreground_colour(pixels, "white"))
        assert drawn[-1] in colours, (prompt, seed)
    assert not mixed or {"purple", "magenta"} & set(drawn), (prompt, drawn)
