"""Shared fixtures: tiny random-weight checkpoints in both layouts, and a backend over them.

No test needs the network: everything runs with HF_HUB_OFFLINE=1 on models built here."""
from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("OMP_NUM_THREADS", "1")
from modules.workers.pool import ROUTING_PATIENCE_ENV  # noqa: E402 - no ray import there

for _name, _value in ROUTING_PATIENCE_ENV.items():  # as --workers ray sets them, before any test imports ray.serve
    os.environ.setdefault(_name, _value)

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

# Tiny models gain nothing from threads, and on 2 shared cores threads make them far slower.
torch.set_num_threads(1)

from tests import tiny_models  # noqa: E402


def _loopback_test_client() -> None:
    """The app answers only under its own host names (modules/security/hosts.py: loopback, the bound
    address, --allowed-hosts), and TestClient's default Host, "testserver", is none of them: in-process
    clients talk to it as http://127.0.0.1, as a local browser would."""
    from starlette.testclient import TestClient

    original = TestClient.__init__

    def __init__(self, app, *args, **kwargs):
        if not args:
            kwargs.setdefault("base_url", "http://127.0.0.1")
        original(self, app, *args, **kwargs)
    TestClient.__init__ = __init__


_loopback_test_client()

ARTIFACTS = Path(__file__).parent / ".artifacts"

# One Playwright (and one Chromium) for the whole run: its sync API allows one per thread, so the
# browser fixtures live in a plugin, not imported into each test module.
pytest_plugins = ["tests.browser"]


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    """models/ with Stable-diffusion/ holding SD 1.x and SDXL tiny models, as folders and single files."""
    root = tmp_path_factory.mktemp("models")
    sd = root / "Stable-diffusion"
    sd.mkdir()
    tiny_models.make_tiny_sd15(sd / "tiny-sd15")
    tiny_models.make_single_file(sd / "tiny-sd15", sd / "tiny-sd15-single.safetensors")
    tiny_models.make_tiny_sdxl(sd / "tiny-sdxl")
    tiny_models.make_single_file(sd / "tiny-sdxl", sd / "tiny-sdxl-single.safetensors")
    for sub in ("VAE", "Latent", "GAN"):
        (root / sub).mkdir()
    return root


@pytest.fixture(scope="session")
def backend(models_dir, tmp_path_factory):
    from modules.backend import Backend, BackendConfig
    from modules.devices import device_config

    work = tmp_path_factory.mktemp("backend")
    return Backend(BackendConfig(models_dir=models_dir, outdir=work / "outputs", cache_dir=work / "cache",
                                 devices=device_config("cpu"), offline=True))


@pytest.fixture
def small_request():
    """A txt2img request small enough for a CPU test: 64 px, 3 steps."""
    from modules.capabilities.txt2img.request import Txt2ImgRequest

    def make(**overrides) -> Txt2ImgRequest:
        values = dict(prompt="a red circle on a white background", negative_prompt="blurry", steps=3,
                      width=64, height=64, seed=1234, sampler="Euler a", checkpoint="tiny-sd15")
        values.update(overrides)
        return Txt2ImgRequest(**values)

    return make


def pytest_configure(config):
    ARTIFACTS.mkdir(exist_ok=True)
    config.addinivalue_line("markers", "load: the bounded load test (tests/test_load.py); CI runs it")
    config.addinivalue_line("markers", "browser: drives headless Chromium (tests/browser.py); slow")
