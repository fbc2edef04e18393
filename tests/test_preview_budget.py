"""The live preview's time budget (live_preview_time_budget, 5 % by default): a preview that would take the
previews past that share of the sampling time is skipped; 0 keeps A1111's every-N-steps exactly."""
import time

import pytest
import torch

from modules.capabilities.txt2img import TXT2IMG, Txt2ImgRequest
from modules.generation import preview
from modules.paths import MODELS_DIR
from modules.settings import OPTIONS


def test_the_default_budget_is_five_percent():
    assert OPTIONS[preview.BUDGET_SETTING].default == preview.DEFAULT_BUDGET == 5


def test_a_preview_is_taken_only_within_the_budget(monkeypatch):
    latents = torch.zeros(1, 4, 8, 8)
    clock = [100.0]
    monkeypatch.setattr(preview.time, "perf_counter", lambda: clock[0])
    previewer = preview.Previewer(preview.FULL, every=1, budget=5)
    key = previewer._cost_key(latents)
    monkeypatch.setitem(preview._costs, key, 1.0)  # one preview: 1 s
    clock[0] += 10  # 10 s of sampling: 1 s more would be 9 % of the time
    assert not previewer.due(1, 100, latents)
    clock[0] += 10  # 20 s: 1 s is 4.8 %
    assert previewer.due(2, 100, latents)
    assert preview.Previewer(preview.FULL, every=1, budget=0).due(1, 100, latents)  # no limit
    assert not previewer.due(3, 3, latents)  # the last step shows the final image instead
    monkeypatch.delitem(preview._costs, key)
    assert previewer.due(1, 100, latents)  # never measured: this one measures it


@pytest.mark.skipif(not (MODELS_DIR / "Stable-diffusion" / "zoo-shapes" / "model_index.json").exists(),
                    reason="built-in weights not shipped")
def test_a_slow_preview_method_is_held_to_its_share_of_a_job(tmp_path, monkeypatch):
    from modules.backend import Backend, BackendConfig
    from modules.devices import device_config

    backend = Backend(BackendConfig(models_dir=MODELS_DIR, outdir=tmp_path / "outputs", cache_dir=tmp_path / "cache",
                                    devices=device_config("cpu"), offline=True))
    real_image = preview.Previewer._image

    def slow_image(self, *args):  # a method that costs far more than a step of the built-in model
        time.sleep(0.2)
        return real_image(self, *args)

    monkeypatch.setattr(preview.Previewer, "_image", slow_image)
    shown = {}
    for budget in (0, 5):  # the budgeted job knows the cost from the first one
        backend.settings.override(preview.METHOD_SETTING, preview.FULL)
        backend.settings.override(preview.EVERY_SETTING, 1)
        backend.settings.override(preview.BUDGET_SETTING, budget)
        job = backend.new_job("txt2img", owner="test")
        request = Txt2ImgRequest(prompt="a red circle on a white background", steps=20, width=32, height=32,
                                 seed=1, checkpoint="zoo-shapes", save_images=False)
        started = time.perf_counter()
        backend.run(TXT2IMG, request, job)
        shown[budget] = (job.preview_version, time.perf_counter() - started)
    assert shown[0][0] == 19  # every step but the last, whatever it costs
    previews, seconds = shown[5]
    assert previews <= 0.05 * seconds / 0.2  # 0.2 s each: none fits in 5 % of a job of about a second
