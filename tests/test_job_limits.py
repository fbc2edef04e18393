"""--max-pixels, --max-batch and --max-steps: defaults from the device, refusals naming the flag (issue 13)."""
from __future__ import annotations

import contextlib

import pytest
import requests

from modules.errors import InvalidRequest
from modules.job_limits import CPU_LIMITS, GPU_LIMITS, JobLimits, default_limits
from tests.test_extensions_fixtures import REPO_EXTENSIONS, attach_extensions  # noqa: F401 - a fixture
from tests.test_xyz_plot import TINY, xyz


@contextlib.contextmanager
def limited(backend, limits: JobLimits | None):
    saved = backend.config.limits
    backend.config.limits = limits
    try:
        yield backend
    finally:
        backend.config.limits = saved


def test_cpu_defaults_are_far_below_a_2048_batch_8_job():
    assert default_limits("cpu") == CPU_LIMITS and default_limits("cuda") == default_limits("mps") == GPU_LIMITS
    assert CPU_LIMITS.max_pixels * CPU_LIMITS.max_batch * 8 <= 2048 * 2048 * 8


@pytest.mark.parametrize("field, value, message", [
    ("width", 2048, "width: width × height 2097152 is over 1048576 pixels (--max-pixels)"),
    ("batch_size", 8, "batch_size: batch size 8 is over 4 (--max-batch)"),
])
def test_cpu_backend_refuses_by_default_naming_the_flag(backend, small_request, field, value, message):
    with limited(backend, None), pytest.raises(InvalidRequest) as error:
        backend.txt2img(small_request(**{field: value, "height": 1024, "save_images": False}))
    assert str(error.value) == message and error.value.field == field


def test_steps_over_the_flag_are_refused(backend, small_request):
    with limited(backend, JobLimits(64 * 64, 2, 10)), pytest.raises(InvalidRequest) as error:
        backend.txt2img(small_request(steps=11, save_images=False))
    assert str(error.value) == "steps: 11 steps is over 10 (--max-steps)"


def test_xyz_steps_axis_is_checked_before_any_image(backend, attach_extensions, small_request):  # noqa: F811
    attach_extensions(REPO_EXTENSIONS)
    outdir = backend.config.outdir
    before = set(outdir.rglob("*.png")) if outdir.exists() else set()
    with limited(backend, JobLimits(64 * 64, 2, 10)), pytest.raises(InvalidRequest) as error:
        backend.txt2img(small_request(save_images=True, **TINY), scripts=xyz(x=("Steps", "2, 11")))
    assert str(error.value) == "steps: 11 steps is over 10 (--max-steps)"
    assert (set(outdir.rglob("*.png")) if outdir.exists() else set()) == before  # not even the "2" cell


@pytest.mark.parametrize("x, y, message", [
    (("Seed", "1-64"), ("CFG Scale", "1-10"), "the grid makes 640 images, over 64 (32 × --max-batch)"),
    (("Seed", "1-40"), ("Nothing", ""), "the grid picture would have 163840 pixels, over 131072 (32 × --max-pixels)"),
])
def test_xyz_grid_is_counted_before_it_is_built(backend, attach_extensions, small_request, x, y, message):  # noqa: F811
    attach_extensions(REPO_EXTENSIONS)
    with limited(backend, JobLimits(64 * 64, 2, 10)), pytest.raises(InvalidRequest) as error:
        backend.txt2img(small_request(save_images=False, **TINY), scripts=xyz(x=x, y=y))
    assert str(error.value) == f"X/Y/Z plot: {message}"


def test_gan_seeds_and_video_size_are_bounded(tmp_path):
    from modules.backend import Backend, BackendConfig
    from modules.devices import device_config
    from modules.capabilities.gan import GanRequest, GanVideoRequest, gan, gan_video

    backend = Backend(BackendConfig(models_dir=tmp_path / "models", outdir=tmp_path / "out", cache_dir=tmp_path / "c",
                                    devices=device_config("cpu"), offline=True, limits=JobLimits(128 * 128, 2, 10)))
    with pytest.raises(InvalidRequest) as error:
        backend.run(gan, GanRequest(seeds="0-64", save_images=False))
    assert str(error.value) == "seeds: 65 images is over 64 (32 × --max-batch)"
    with pytest.raises(InvalidRequest) as error:
        backend.run(gan_video, GanVideoRequest(seeds="0-3", size=256))
    assert str(error.value) == "size: width × height 65536 is over 16384 pixels (--max-pixels)"


@pytest.mark.parametrize("flag", ["--max-pixels=10", "--max-pixels=99999999", "--max-batch=0", "--max-batch=9",
                                  "--max-steps=151"])
def test_flags_out_of_range_stop_the_start(flag, capsys):
    from modules import cmd_args

    with pytest.raises(SystemExit):
        cmd_args.parse_args([flag])
    assert flag.split("=")[0] in capsys.readouterr().err


def test_flags_through_webui_entry_point(models_dir, tmp_path):
    from tests.app_process import AppProcess

    flags = ["--nowebui", "--models-dir", str(models_dir), "--outdir", str(tmp_path / "outputs"),
             "--skip-load-model-at-start", "--max-pixels", "4096", "--max-batch", "1", "--max-steps", "5"]
    body = {"prompt": "a dot", "width": 64, "height": 64, "steps": 2}
    with AppProcess(*flags) as app:
        for change, field, flag in [({"width": 128}, "width", "--max-pixels"), ({"batch_size": 2}, "batch_size",
                                    "--max-batch"), ({"steps": 6}, "steps", "--max-steps")]:
            response = requests.post(f"{app.url}/sdapi/v1/txt2img", json={**body, **change}, timeout=60)
            assert response.status_code == 422, response.text
            assert response.json()["field"] == field and f"({flag})" in response.json()["detail"]
