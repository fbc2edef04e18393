"""The refiner (A1111's refiner_checkpoint / refiner_switch_at): a second checkpoint takes over the sampling
part-way, on the same latents and schedule; through the API, the UI handlers, PNG Info and the X/Y/Z plot."""
from __future__ import annotations

import base64
import io
from contextlib import contextmanager
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from modules.capabilities.img2img import IMG2IMG, Img2ImgRequest
from modules.capabilities.txt2img.request import Txt2ImgRequest
from modules.errors import InvalidRequest
from modules.ui.pnginfo_tab import image_info, refiner_values
from tests import tiny_models
from tests.inprocess_app import app_client

BASE = "tiny-sdxl"
REFINER = "tiny-sdxl-refiner"


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    """Tiny SDXL base (folder) and refiner (single file + sidecar config), and two SD 1.x models."""
    from modules.backend import Backend, BackendConfig
    from modules.devices import device_config

    root = tmp_path_factory.mktemp("refiner-models")
    sd = root / "Stable-diffusion"
    sd.mkdir()
    build = tmp_path_factory.mktemp("refiner-build")
    tiny_models.make_tiny_sdxl(sd / BASE)
    tiny_models.make_single_file(tiny_models.make_tiny_sdxl(build / "refiner", refiner=True),
                                 sd / f"{REFINER}.safetensors")
    tiny_models.make_tiny_sd15(sd / "tiny-sd15")
    tiny_models.make_tiny_sd15(sd / "tiny-sd15-b")
    _reseed(sd / "tiny-sd15-b" / "unet")
    for sub in ("VAE", "Latent", "GAN"):
        (root / sub).mkdir()
    work = tmp_path_factory.mktemp("refiner-work")
    return Backend(BackendConfig(models_dir=root, outdir=work / "outputs", cache_dir=work / "cache",
                                 devices=device_config("cpu"), offline=True))


def _reseed(folder):
    """Other UNet weights for the second SD 1.x model (the builders are deterministic)."""
    from safetensors.torch import load_file, save_file

    file = next(folder.glob("*.safetensors"))
    weights = load_file(str(file))
    generator = torch.Generator().manual_seed(7)
    save_file({k: v + 0.05 * torch.randn(v.shape, generator=generator) if v.is_floating_point() else v
               for k, v in weights.items()}, str(file))


def request(**overrides) -> Txt2ImgRequest:
    values = dict(prompt="a red circle on a white background", negative_prompt="blurry", steps=4, width=64,
                  height=64, seed=77, sampler="Euler", checkpoint=BASE, save_images=False)
    values.update(overrides)
    return Txt2ImgRequest(**values)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float32)


@contextmanager
def counted_calls(backend, *checkpoints):
    """How often each checkpoint's denoiser runs while inside (forward hooks on the cached modules)."""
    counts = {name: 0 for name in checkpoints}
    handles = []
    for name in checkpoints:
        unet = backend.manager.load(name).pipe.unet

        def hook(_module, _args, name=name):
            counts[name] += 1
        handles.append(unet.register_forward_pre_hook(hook))
    try:
        yield counts
    finally:
        for handle in handles:
            handle.remove()


def test_switch_at_1_is_no_refiner_and_0_5_hands_half_the_steps_to_the_refiner(backend):
    plain = backend.txt2img(request())
    with counted_calls(backend, BASE, REFINER) as never:
        at_one = backend.txt2img(request(refiner_checkpoint=REFINER, refiner_switch_at=1.0))
    assert never == {BASE: 4, REFINER: 0}
    assert np.array_equal(pixels(at_one.images[0]), pixels(plain.images[0]))
    assert "Refiner" not in at_one.infotexts[0]  # A1111 writes it only when the switch happened
    with counted_calls(backend, BASE, REFINER) as half:
        refined = backend.txt2img(request(refiner_checkpoint=REFINER, refiner_switch_at=0.5))
    # Euler's 4 timesteps over 1000 (leading spacing: 751, 501, 251, 1): (999 - t) / 1000 ≥ 0.5 from the third.
    assert half == {BASE: 2, REFINER: 2}
    assert np.abs(pixels(refined.images[0]) - pixels(plain.images[0])).mean() > 1.0
    text = refined.infotexts[0]
    refiner = backend.registry.find(REFINER)
    assert f"Refiner: {REFINER} [{refiner.shorthash}], Refiner switch at: 0.5" in text
    # Both models stay cached after the job, neither in use.
    cached = {m["title"]: m for m in backend.cached_models()}
    assert {backend.registry.find(BASE).title, refiner.title} <= set(cached)
    assert not any(m["in_use"] for m in cached.values())


def test_the_seed_reproduces_with_the_refiner(backend):
    first = backend.txt2img(request(refiner_checkpoint=REFINER, refiner_switch_at=0.5, seed=5))
    second = backend.txt2img(request(refiner_checkpoint=REFINER, refiner_switch_at=0.5, seed=5))
    assert np.array_equal(pixels(first.images[0]), pixels(second.images[0]))


def test_both_models_are_held_by_the_manager_while_the_job_runs(backend, monkeypatch):
    from modules.capabilities import refiner_switch

    seen = []
    original = refiner_switch.SwitchingDenoiser.forward

    def forward(self, *args, **kwargs):
        seen.append(sorted(m.title for m in backend.manager.cache.models.values() if m.in_use))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(refiner_switch.SwitchingDenoiser, "forward", forward)
    backend.txt2img(request(refiner_checkpoint=REFINER, refiner_switch_at=0.5, steps=2))
    titles = sorted([backend.registry.find(BASE).title, backend.registry.find(REFINER).title])
    assert seen and all(held == titles for held in seen)


def test_a_refiner_of_another_latent_space_is_refused_naming_the_field(backend):
    with pytest.raises(InvalidRequest) as refused:
        backend.txt2img(request(refiner_checkpoint="tiny-sd15"))
    assert refused.value.field == "refiner_checkpoint"
    assert "another latent space" in refused.value.message
    with pytest.raises(InvalidRequest) as unknown:
        backend.txt2img(request(refiner_checkpoint="no-such-model"))
    assert unknown.value.field == "refiner_checkpoint"


@pytest.mark.parametrize("value", [-0.1, 1.5, "half", float("nan")])
def test_a_bad_switch_point_is_refused_naming_the_field(value):
    with pytest.raises(InvalidRequest) as refused:
        request(refiner_checkpoint=REFINER, refiner_switch_at=value).validated()
    assert refused.value.field == "refiner_switch_at"


def test_none_means_no_refiner(backend):
    for name in ("", "None", "none", None):
        assert request(refiner_checkpoint=name).validated().refiner_checkpoint is None


def test_any_checkpoint_of_the_same_latent_space_refines_sd1_to_sd1(backend):
    sd1 = dict(checkpoint="tiny-sd15")
    plain = backend.txt2img(request(**sd1))
    with counted_calls(backend, "tiny-sd15", "tiny-sd15-b") as calls:
        refined = backend.txt2img(request(**sd1, refiner_checkpoint="tiny-sd15-b", refiner_switch_at=0.3))
    assert calls["tiny-sd15"] > 0 and calls["tiny-sd15-b"] > 0
    assert not np.array_equal(pixels(plain.images[0]), pixels(refined.images[0]))
    assert "Refiner: tiny-sd15-b [" in refined.infotexts[0]


def test_img2img_refines_too(backend):
    init = Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8))
    common = dict(prompt="a red circle", steps=6, width=64, height=64, seed=3, sampler="Euler", checkpoint=BASE,
                  save_images=False, init_images=[init], denoising_strength=0.8)
    plain = backend.run(IMG2IMG, Img2ImgRequest(**common))
    with counted_calls(backend, BASE, REFINER) as calls:
        refined = backend.run(IMG2IMG, Img2ImgRequest(**common, refiner_checkpoint=REFINER, refiner_switch_at=0.6))
    assert calls[BASE] > 0 and calls[REFINER] > 0
    assert not np.array_equal(pixels(plain.images[0]), pixels(refined.images[0]))
    assert "Refiner switch at: 0.6" in refined.infotexts[0]


def test_with_hires_fix_the_refiner_works_in_the_second_pass(backend):
    hires = dict(enable_hr=True, hr_scale=2, hr_upscaler="Latent", denoising_strength=0.6, hr_second_pass_steps=4)
    with counted_calls(backend, BASE, REFINER) as calls:
        result = backend.txt2img(request(**hires, refiner_checkpoint=REFINER, refiner_switch_at=0.5))
    # First pass: 4 base steps; the second pass runs 4 × 0.6 = 2 steps, all past the switch point.
    assert calls == {BASE: 4, REFINER: 2}
    assert result.images[0].size == (128, 128) and "Refiner: " in result.infotexts[0]


def test_the_infotext_round_trips_through_png_info_into_the_refiner_controls(backend):
    result = backend.txt2img(request(refiner_checkpoint=REFINER, refiner_switch_at=0.5, save_images=True))
    parameters, _, parsed = image_info(str(result.paths[0]))
    assert parameters == result.infotexts[0]
    title = backend.registry.find(REFINER).title
    assert refiner_values(parsed, backend) == [True, title, 0.5]
    # Sent back, the same picture.
    again = backend.txt2img(request(refiner_checkpoint=title, refiner_switch_at=0.5))
    assert np.array_equal(pixels(again.images[0]), pixels(result.images[0]))
    plain = backend.txt2img(request(save_images=True))
    assert refiner_values(image_info(str(plain.paths[0]))[2], backend)[0] is False


def ui_answers(tab, backend, *own):
    return list(tab._generate(BASE, "a red circle on a white background", "blurry", "Euler", 4, 7.0, 64, 64, 77,
                              1, 1, "Automatic", False, -1, 0, 0, 0, [], *own, request=SimpleNamespace(username=None, session_hash="refiner-test")))


def test_the_txt2img_tab_handler_passes_the_refiner(backend):
    import gradio as gr

    from modules.ui.txt2img_tab import Txt2ImgTab

    with gr.Blocks():
        tab = Txt2ImgTab(backend, checkpoint=gr.Dropdown([BASE], value=None))
        tab.build()
    hires_off = [False, "Latent", 0, 0.7, 2, 0, 0, "Use same sampler", "Use same scheduler", "", ""]
    answers = ui_answers(tab, backend, *hires_off, True, REFINER, 0.5)
    text = answers[-1][tab.infotext]
    assert "Refiner switch at: 0.5" in text
    off = ui_answers(tab, backend, *hires_off, False, REFINER, 0.5)  # picked but not enabled: no refiner
    assert "Refiner" not in off[-1][tab.infotext]
    with pytest.raises(gr.Error) as toast:
        ui_answers(tab, backend, *hires_off, True, "tiny-sd15", 0.5)
    assert "refiner_checkpoint" in toast.value.message


def b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


@pytest.fixture(scope="module")
def client(backend, tmp_path_factory):
    with app_client(backend, tmp_path_factory.mktemp("refiner-api") / "config.json") as client:
        yield client


API_BODY = {"prompt": "a red circle", "negative_prompt": "blurry", "seed": 9, "steps": 4, "width": 64, "height": 64,
            "sampler_name": "Euler", "cfg_scale": 7, "override_settings": {"sd_model_checkpoint": BASE}}


def test_the_api_takes_a1111s_refiner_fields(client, backend):
    plain = client.post("/sdapi/v1/txt2img", json=API_BODY).json()
    refined = client.post("/sdapi/v1/txt2img", json={**API_BODY, "refiner_checkpoint": REFINER,
                                                     "refiner_switch_at": 0.5}).json()
    never = client.post("/sdapi/v1/txt2img", json={**API_BODY, "refiner_checkpoint": REFINER,
                                                   "refiner_switch_at": 1.0}).json()
    assert refined["images"][0] != plain["images"][0] and never["images"][0] == plain["images"][0]
    assert "Refiner switch at: 0.5" in refined["info"]
    refused = client.post("/sdapi/v1/txt2img", json={**API_BODY, "refiner_checkpoint": "tiny-sd15"})
    assert refused.status_code == 422 and refused.json()["detail"].startswith("refiner_checkpoint:")
    init = Image.fromarray((np.random.default_rng(1).random((64, 64, 3)) * 255).astype(np.uint8))
    img2img = client.post("/sdapi/v1/img2img", json={**API_BODY, "init_images": [b64(init)], "denoising_strength": 0.8,
                                                     "refiner_checkpoint": REFINER, "refiner_switch_at": 0.5})
    assert img2img.status_code == 200 and "Refiner: " in img2img.json()["info"]


def test_the_models_route_lists_each_component_with_dtype_device_and_bytes(client, backend):
    backend.manager.load(REFINER)
    models = {m["title"]: m for m in client.get("/zoo/v1/models/cached").json()["models"]}
    refiner = models[backend.registry.find(REFINER).title]
    parts = {c["name"]: c for c in refiner["components"]}
    assert set(parts) == {"unet", "vae", "text_encoder_2"}  # the refiner's only text encoder: OpenCLIP-G
    assert all(c["dtype"] == "float32" and c["device"] == "cpu" and c["bytes"] > 0 for c in parts.values())
    assert sum(c["bytes"] for c in parts.values()) == refiner["bytes"]
    # The Models tab's Components table: the same rows.
    from modules.ui.models_tab import components_table

    table = components_table(backend)
    rows = [row for row in table["data"] if row[0] == refiner["title"]]
    assert table["headers"][:5] == ["Model", "Component", "Stored as", "On", "Size (MB)"]
    assert sorted(row[1] for row in rows) == ["text_encoder_2", "unet", "vae"]
    assert all(row[2] == "float32" and row[3] == "cpu" and row[4] > 0 for row in rows)


def test_the_xyz_plot_has_refiner_axes(backend):
    from extensions.xyz_plot import xyz_axes

    labels = [axis.label for axis in xyz_axes.TXT2IMG_AXES]
    assert "Refiner checkpoint" in labels and "Refiner switch at" in labels
    axis = xyz_axes.find_axis(xyz_axes.TXT2IMG_AXES, "Refiner checkpoint", "X type")
    context = xyz_axes.AxisContext(request(), backend, "X values")
    values = xyz_axes.axis_values(axis, f"None, {REFINER}", context)
    assert values == ["None", backend.registry.find(REFINER).title]
    assert axis.apply(request(), "None").refiner_checkpoint is None
    with pytest.raises(InvalidRequest) as refused:
        xyz_axes.axis_values(axis, "no-such-model", context)
    assert refused.value.field == "X values"


@pytest.mark.parametrize("offload", ["model", "sequential"])
def test_medvram_and_lowvram_refine_to_the_same_picture(backend, tmp_path, offload):
    """--medvram/--lowvram: the offload hooks move both models' parts; the picture is the same, and the next
    job without a refiner still runs on hooks put back in order."""
    from modules.backend import Backend, BackendConfig
    from modules.devices import DeviceConfig

    devices = DeviceConfig(torch.device("cpu"), torch.float32, torch.float32, offload)
    offloaded = Backend(BackendConfig(models_dir=backend.config.models_dir, outdir=tmp_path / "out",
                                      cache_dir=tmp_path / "cache", devices=devices, offline=True))
    wanted = backend.txt2img(request(refiner_checkpoint=REFINER, refiner_switch_at=0.5))
    got = offloaded.txt2img(request(refiner_checkpoint=REFINER, refiner_switch_at=0.5))
    assert np.abs(pixels(got.images[0]) - pixels(wanted.images[0])).max() <= 1
    plain = offloaded.txt2img(request())
    assert np.abs(pixels(plain.images[0]) - pixels(backend.txt2img(request()).images[0])).max() <= 1


def test_when_both_do_not_fit_the_device_budget_the_denoisers_take_turns(backend, tmp_path, monkeypatch):
    """The device budget holds the job's checkpoint, or the refiner beside all of it but its UNet: at the switch
    the first UNet goes back to its RAM copy and the refiner comes; the next batch swaps back. Fresh CPU copies
    stand in for the GPU (force_device_level), so the picture must not change."""
    from modules.backend import Backend, BackendConfig
    from modules.capabilities import refiner_switch
    from modules.devices import device_config

    turns = Backend(BackendConfig(models_dir=backend.config.models_dir, outdir=tmp_path / "out",
                                  cache_dir=tmp_path / "cache", devices=device_config("cpu"), offline=True))
    cache = turns.manager.cache
    cache.force_device_level = True
    base, refiner = turns.manager.load(BASE), turns.manager.load(REFINER)
    both = cache.device_bytes
    assert base.on_device and refiner.on_device
    cache.unload_all()
    cache.vram_budget = both - 1  # not both whole
    seen = []
    original = refiner_switch.SwitchingDenoiser.forward

    def forward(self, sample, timestep, *args, **kwargs):
        out = original(self, sample, timestep, *args, **kwargs)
        models = {m.info.name: m for m in cache.models.values()}
        seen.append((self.switched, models[BASE].components["unet"].on_device,
                     models[f"{REFINER}.safetensors"].components["unet"].on_device, cache.device_bytes))
        return out

    monkeypatch.setattr(refiner_switch.SwitchingDenoiser, "forward", forward)
    result = turns.txt2img(request(refiner_checkpoint=REFINER, refiner_switch_at=0.5, batch_count=2))
    assert [s[:3] for s in seen] == [(False, True, False)] * 2 + [(True, False, True)] * 2 \
        + [(False, True, False)] * 2 + [(True, False, True)] * 2
    assert all(device_bytes <= cache.vram_budget for *_, device_bytes in seen)
    wanted = backend.txt2img(request(refiner_checkpoint=REFINER, refiner_switch_at=0.5, batch_count=2))
    for got, expected in zip(result.images, wanted.images):
        assert np.array_equal(pixels(got), pixels(expected))
