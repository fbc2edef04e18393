"""--compile: the denoiser through torch.compile draws the same pictures as eager, through the runner; what
compiles again and what does not (a second job, a checkpoint swap and back, LoRAs attached and removed), and
the warm-up reported in the job's note and the Models tab's rows.

The suite uses torch's "aot_eager" backend: dynamo's capture, guards and recompiles, and AOT autograd's
decompositions, without inductor's C++ build (minutes per model on a small CPU). bench/txt2img.py --compile
runs inductor, the backend --compile uses, and reports its picture's PSNR against eager."""
import math

import numpy as np
import pytest

from modules import compat
from modules.backend import Backend, BackendConfig
from modules.capabilities.txt2img import TXT2IMG, Txt2ImgRequest
from modules.devices import device_config
from modules.generation import stop_points
from modules.models import compiled
from modules.paths import MODELS_DIR
from tests import tiny_models
from tests.lora_fixtures import make_kohya_lora

ZOO = MODELS_DIR / "Stable-diffusion" / "zoo-shapes"
pytestmark = pytest.mark.skipif(not (ZOO / "model_index.json").exists(), reason="built-in weights not shipped")


def psnr(a, b) -> float:
    mse = float(((np.asarray(a, dtype=float) - np.asarray(b, dtype=float)) ** 2).mean())
    return 10 * math.log10(255**2 / mse) if mse else float("inf")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("compile-models")
    (root / "Stable-diffusion").mkdir()
    (root / "Stable-diffusion" / "zoo-shapes").symlink_to(ZOO)
    tiny = tiny_models.make_tiny_sd15(root / "Stable-diffusion" / "tiny-sd15")
    make_kohya_lora(tiny, root / "Lora" / "ink.safetensors", seed=1)
    return root


def _backend(models, work, backend_name):
    devices = device_config("cpu")
    if backend_name:
        devices = device_config("cpu", compile=True)
        devices = type(devices)(**{**devices.__dict__, "compile": backend_name})
    return Backend(BackendConfig(models_dir=models, outdir=work / "outputs", cache_dir=work / "cache",
                                 devices=devices, offline=True))


@pytest.fixture(scope="module")
def pair(models, tmp_path_factory):
    work = tmp_path_factory.mktemp("compile-work")
    return _backend(models, work / "eager", None), _backend(models, work / "compiled", "aot_eager")


def run(backend, prompt="a red circle on a white background", checkpoint="zoo-shapes", size=32, **values):
    request = Txt2ImgRequest(prompt=prompt, steps=6, width=size, height=size, seed=3, sampler="Euler a",
                             checkpoint=checkpoint, save_images=False, **values)
    job = backend.new_job("txt2img", owner="test")
    result = backend.run(TXT2IMG, request, job)
    return np.asarray(result.images[0]), job


def forward_of(backend, checkpoint):
    model = backend.manager.load(checkpoint)
    return compiled.compiled_forward(model.info.architecture.spec.denoiser_of(model.pipe))


def row_of(backend, checkpoint):
    return next(m for m in backend.cached_models() if m["kind"] == "checkpoint" and checkpoint in m["title"])


def test_the_flag_reaches_the_device_config():
    assert device_config("cpu", compile=True).compile == "inductor"
    assert device_config("cpu").compile is None
    assert "compiled (inductor)" in device_config("cpu", compile=True).describe()


def test_a_compiled_denoiser_draws_the_eager_picture_and_compiles_once_per_size(pair):
    eager, fast = pair
    expected, _ = run(eager)
    assert row_of(eager, "zoo-shapes")["compile_seconds"] is None
    picture, first = run(fast)
    assert psnr(picture, expected) >= 40
    forward = forward_of(fast, "zoo-shapes")
    assert forward is not None and forward.compiles >= 1
    assert "torch.compile warm-up" in first.note
    assert row_of(fast, "zoo-shapes")["compile_seconds"] > 0

    frames = compat.frames_compiled()
    again, second = run(fast)  # the same size: nothing compiles again, and the job says nothing of it
    assert compat.frames_compiled() == frames
    assert not second.note or "torch.compile" not in second.note
    assert np.array_equal(again, picture)

    bigger, _ = run(fast, size=48)  # another size compiles again (once), and still draws right
    assert forward.compiles >= 2
    assert psnr(bigger, run(eager, size=48)[0]) >= 40


def test_a_checkpoint_swap_and_back_does_not_compile_the_first_again(pair):
    _, fast = pair
    run(fast)
    zoo = forward_of(fast, "zoo-shapes")
    compiles = zoo.compiles
    run(fast, checkpoint="tiny-sd15", size=64)
    assert forward_of(fast, "tiny-sd15").compiles >= 1  # its own module, its own warm-up
    frames = compat.frames_compiled()
    run(fast)
    assert zoo.compiles == compiles and compat.frames_compiled() == frames


def test_loras_attach_and_detach_under_compile(pair):
    eager, fast = pair
    kwargs = dict(checkpoint="tiny-sd15", size=64)
    base = run(eager, "a red circle", **kwargs)[0]
    inked = run(eager, "a red circle <lora:ink:1>", **kwargs)[0]
    assert np.abs(base.astype(int) - inked).mean() > 1  # the LoRA changes the picture
    forward = forward_of(fast, "tiny-sd15")
    assert psnr(run(fast, "a red circle <lora:ink:1>", **kwargs)[0], inked) >= 40  # attached: recompiled, right
    assert psnr(run(fast, "a red circle", **kwargs)[0], base) >= 40  # disabled again: the base picture
    compiles = forward.compiles
    assert psnr(run(fast, "a red circle <lora:ink:1>", **kwargs)[0], inked) >= 40
    assert forward.compiles == compiles  # both states were compiled before: neither compiles again


def test_a_compiled_denoiser_gets_no_in_step_stop_points(pair):
    _, fast = pair
    denoiser = forward_of(fast, "zoo-shapes").compiled  # the module holds it; hooks would mean a compile a job
    model = fast.manager.load("zoo-shapes")
    unet = model.info.architecture.spec.denoiser_of(model.pipe)
    assert denoiser is not None and compiled.is_compiled(unet)
    with stop_points.checked(unet, lambda: None):
        assert not any(m._forward_pre_hooks or stop_points.is_checked(m) for m in stop_points.stop_points(unet))
