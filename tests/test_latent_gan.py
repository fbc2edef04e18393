"""The Latent Explorer's GAN mode through its handlers (built by the tab, as the app builds it): Start shows the
seed's picture (the GAN Sampler's), a direction slider moves it, every slider back at 0 is the base picture again;
a GAN without per-layer styles is refused with a message naming it."""
from __future__ import annotations

import gradio as gr
import numpy as np
import pytest

from modules.ui.errors import user_errors  # noqa: F401 - the handlers raise gr.Error through it
from tests.stylegan_pickles import write_nvidia_pickle


@pytest.fixture(scope="module")
def mode(tmp_path_factory):
    from modules.backend import Backend, BackendConfig
    from modules.devices import device_config
    from modules.ui.latent.gan_mode import GanLatentMode

    root = tmp_path_factory.mktemp("latent-gan-models")
    (root / "GAN").mkdir()
    write_nvidia_pickle(root / "GAN" / "sg2.pkl", "sg2")
    work = tmp_path_factory.mktemp("latent-gan-work")
    backend = Backend(BackendConfig(models_dir=root, outdir=work / "outputs", cache_dir=work / "cache",
                                    devices=device_config("cpu")))
    mode = GanLatentMode(backend)
    with gr.Blocks():
        mode.build()
    return mode


def _pixels(image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


@pytest.mark.parametrize("method", ["sefa", "ganspace"])
def test_a_slider_moves_the_picture_and_zero_is_the_seeds_picture(mode, method):
    from modules.capabilities.gan import GanRequest, gan

    model = mode.backend.gan_titles()[0]
    start = mode.begin(model, method, 3, 0.7)
    assert f"{'SeFa' if method == 'sefa' else 'GANSpace'}: 8 directions" in start[mode.message]
    sampler = mode.backend.run(gan, GanRequest(model=model, seeds="3", truncation_psi=0.7, save_images=False))
    base = _pixels(start[mode.image])
    assert np.array_equal(base, _pixels(sampler.images[0]))
    strengths = [0.0] * 8
    strengths[0] = 6.0
    moved = mode.moved(None, model, 3, 0.7, start[mode.directions], *strengths)
    assert np.abs(_pixels(moved[mode.image]) - base).mean() > 2
    assert "Directions: 6 on 0-8" in moved[mode.infotext]
    back = mode.moved(None, model, 3, 0.7, start[mode.directions], *[0.0] * 8)
    assert np.array_equal(_pixels(back[mode.image]), base)


def test_moving_before_start_and_no_model_are_refused(mode, tmp_path):
    model = mode.backend.gan_titles()[0]
    with pytest.raises(gr.Error, match="Start from the seed"):
        mode.moved(None, model, 3, 0.7, "", *[1.0] * 8)
    with pytest.raises(gr.Error, match="model"):
        mode.begin(None, "sefa", 0, 1.0)
