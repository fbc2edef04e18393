"""Live previews through real jobs on the built-in model: each method (A1111's show_progress_type) gives a
picture of the image's size whose colours are roughly the final image's, the settings are honoured, and a
missing Approx NN/TAESD file falls back to Approx cheap, saying so once."""
from __future__ import annotations

import base64
import io
import logging
import os
import uuid

import numpy as np
import pytest
import requests
import torch
from PIL import Image

from modules.generation import preview
from modules.models import families
from modules.paths import MODELS_DIR
from tests import preview_decoders
from tests.test_api_tasks import post, start_server

ZOO = MODELS_DIR / "Stable-diffusion" / "zoo-shapes"
RED_CIRCLE = {"prompt": "a red circle on a white background", "width": 32, "height": 32, "steps": 20,
              "sampler_name": "Euler", "cfg_scale": 5, "seed": 0,
              "override_settings": {"sd_model_checkpoint": "zoo-shapes"}}


@pytest.fixture(scope="module")
def zoo_models(tmp_path_factory):
    if not (ZOO / "model_index.json").exists():
        pytest.skip("the built-in zoo-shapes model is not here")
    from diffusers import AutoencoderKL

    root = tmp_path_factory.mktemp("preview-models")
    (root / "Stable-diffusion").mkdir()
    os.symlink(ZOO, root / "Stable-diffusion" / "zoo-shapes")
    vae = AutoencoderKL.from_pretrained(ZOO / "vae", local_files_only=True)
    preview_decoders.fitted(vae, root / "VAE-approx")
    return root


@pytest.fixture(scope="module")
def zoo_backend(zoo_models, tmp_path_factory):
    from modules.backend import Backend, BackendConfig
    from modules.devices import device_config

    work = tmp_path_factory.mktemp("preview-backend")
    return Backend(BackendConfig(models_dir=zoo_models, outdir=work / "outputs", cache_dir=work / "cache",
                                 devices=device_config("cpu"), offline=True))


@pytest.fixture(scope="module")
def api(zoo_backend, tmp_path_factory):
    server = start_server(zoo_backend, tmp_path_factory.mktemp("preview-api"))
    yield server.url + "/sdapi/v1"
    server.stop()


def _picture(data: str) -> np.ndarray:
    with Image.open(io.BytesIO(base64.b64decode(data))) as image:
        assert image.size == (32, 32)
        return np.asarray(image.convert("RGB"), dtype=float)


def job_with_preview(api, method: str, every: int = 15) -> tuple[np.ndarray | None, np.ndarray]:
    """(the job's last live preview, its image) for a red circle with the preview settings given."""
    post(f"{api}/options", {"show_progress_type": method, "show_progress_every_n_steps": every,
                            "live_preview_time_budget": 0})  # exactly every N steps (test_preview_budget.py)
    task_id = f"preview-{uuid.uuid4().hex[:8]}"
    result = post(f"{api}/txt2img", {**RED_CIRCLE, "force_task_id": task_id, "save_images": False})
    answer = requests.get(f"{api}/progress", params={"task_id": task_id, "skip_current_image": False}, timeout=30)
    assert answer.status_code == 200, answer.text
    shown = answer.json()["current_image"]
    return (_picture(shown) if shown else None), _picture(result["images"][0])


def _coarse(picture: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(picture.astype(np.uint8)).resize((4, 4), Image.Resampling.BOX), dtype=float)


def _reddish(picture: np.ndarray) -> bool:
    """The pixels furthest from the white background are red: R well above G and B."""
    far = picture[(255 - picture).sum(-1) > 150]
    assert len(far) >= 10, "no foreground"
    r, g, b = np.median(far, axis=0)
    return r > g + 40 and r > b + 40


@pytest.mark.parametrize("method", preview.METHODS)
def test_each_method_previews_the_image_in_its_colours(api, method):
    shown, final = job_with_preview(api, method)
    assert shown is not None, method
    assert _reddish(final)
    if method == preview.APPROX_CHEAP:
        # A1111's fixed map is SD 1.x's VAE's; zoo-shapes has a VAE (and latent space) of its own, so its
        # colours are not this image's: only the size is checked here (test_families checks the map).
        return
    # Roughly the image's colours, 4×4 blocks apart (the test's decoders are fitted for seconds only); a
    # preview in other colours (the cheap map here, say) is 100 or more away.
    difference = np.abs(_coarse(shown) - _coarse(final)).mean()
    assert difference < 60, (method, difference)
    if method == preview.FULL:
        assert _reddish(shown)


def test_the_methods_differ_and_none_is_shown_with_every_0(api):
    pictures = {method: job_with_preview(api, method)[0] for method in preview.METHODS}
    for a in preview.METHODS:
        for b in preview.METHODS:
            assert a == b or not np.array_equal(pictures[a], pictures[b]), (a, b)
    assert job_with_preview(api, preview.FULL, every=0)[0] is None
    shown, final = job_with_preview(api, preview.FULL, every=19)  # the preview of step 19 of 20: nearly the image
    assert np.abs(shown - final).mean() < 20


def test_a_missing_file_falls_back_to_approx_cheap_saying_so_once(api, zoo_backend, tmp_path, caplog):
    cheap, _ = job_with_preview(api, preview.APPROX_CHEAP)
    folder = zoo_backend.manager.preview_folder
    zoo_backend.manager.preview_folder = tmp_path  # empty: neither model.pt nor taesd
    try:
        with caplog.at_level(logging.WARNING):
            first, _ = job_with_preview(api, preview.TAESD)
            second, _ = job_with_preview(api, preview.TAESD)
    finally:
        zoo_backend.manager.preview_folder = folder
    assert np.array_equal(first, cheap) and np.array_equal(second, cheap)
    said = [r.getMessage() for r in caplog.records if "TAESD preview" in r.getMessage()]
    assert len(said) == 1 and "taesd_decoder.safetensors" in said[0] and "Approx cheap" in said[0], said


def test_an_unknown_method_name_is_refused_and_one_in_a_hand_edited_config_is_approx_cheap(api, zoo_backend,
                                                                                           caplog):
    cheap, _ = job_with_preview(api, preview.APPROX_CHEAP)
    refused = requests.post(f"{api}/options", json={"show_progress_type": "Approx NNN"}, timeout=30)
    assert refused.status_code == 422 and refused.json()["detail"].startswith("show_progress_type:")
    zoo_backend.settings.override(preview.METHOD_SETTING, "Approx NNN")  # as config.json edited by hand would
    try:
        with caplog.at_level(logging.WARNING):
            task_id = f"preview-{uuid.uuid4().hex[:8]}"
            post(f"{api}/txt2img", {**RED_CIRCLE, "force_task_id": task_id, "save_images": False})
            answer = requests.get(f"{api}/progress", params={"task_id": task_id, "skip_current_image": False},
                                  timeout=30).json()
    finally:
        zoo_backend.settings.override(preview.METHOD_SETTING, preview.APPROX_CHEAP)
    assert np.array_equal(_picture(answer["current_image"]), cheap)
    assert any("'Approx NNN' is none of" in r.getMessage() for r in caplog.records)


def test_a_taesd_decoder_file_in_taesds_own_layout_loads(zoo_backend, tmp_path):
    """A decoder-only file as TAESD publishes it (random weights here): loaded through the cache, at 8×."""
    preview_decoders.random_taesd_decoder_file(tmp_path / "taesd_decoder.safetensors")
    manager = zoo_backend.manager
    folder = manager.preview_folder
    manager.preview_folder = tmp_path
    try:
        with manager.preview_decoder(preview.TAESD, families.by_name("sd1").latent) as decoder:
            assert decoder is not None
            previewer = preview.Previewer(preview.TAESD, 5, decoder)
            image = previewer.image(None, torch.randn(1, 4, 8, 8), families.by_name("sd1"), (64, 64))
            assert decoder.decode(torch.randn(1, 4, 8, 8)).sample.shape == (1, 3, 64, 64)
    finally:
        manager.preview_folder = folder
    assert image.size == (64, 64)
    assert any("TAESD preview" in row.get("title", "") for row in manager.cached_models())
