"""StyleGAN's controls reach every way the GAN tab renders: the interpolation video (noise mode, translate/rotate,
cutoff, one style mix seed for every frame), the seed-plane pad (through the tab's handlers) and a latent import,
which sets those controls so Generate renders the imported picture again."""
from __future__ import annotations

import gradio as gr
import numpy as np
import pytest

from modules.capabilities.gan import GanVideoRequest
from modules.capabilities.gan.run import to_pil
from modules.capabilities.gan.video import frame_images
from modules.models.stylegan_files import read_converted_generator
from tests.stylegan_pickles import DATA, nvidia_outputs
from tests.test_stylegan import _sample, _within_one, stylegan_backend  # noqa: F401 - fixture


def _frames(name: str, **values) -> list:
    generator = read_converted_generator(DATA / f"{name}.safetensors")
    request = GanVideoRequest(frames=2, loop=False, size=32, save=False, **values).validated()
    return to_pil(frame_images(request, generator), True)


def test_a_video_takes_translate_and_rotate_as_gen_images_does():
    ref = nvidia_outputs("sg3t")
    conditional = ref["c"].shape[1] > 0
    frames = _frames("sg3t", seeds="0,1", truncation_psi=0.7, translate="0.3,-0.2", rotate=20,
                     class_name="1" if conditional else None)
    assert _within_one(frames[0], ref["seed0_tr_png"]) and _within_one(frames[-1], ref["seed1_tr_png"])


def test_a_video_mixed_over_every_layer_is_the_mix_seeds_picture_and_noise_modes_differ(stylegan_backend):
    mixed = _frames("sg2", seeds="0,1", style_mix_seed=7, style_mix_from=0)
    alone = _sample(stylegan_backend, model="sg2.pkl", seeds="7", save_images=False).images[0]
    assert all(np.array_equal(np.asarray(f), np.asarray(alone)) for f in mixed)
    const, none = _frames("sg2", seeds="0,1"), _frames("sg2", seeds="0,1", noise_mode="none")
    assert not np.array_equal(np.asarray(const[0]), np.asarray(none[0]))
    with pytest.raises(Exception, match="rotate"):
        _frames("sg2", seeds="0,1", rotate=10)


@pytest.fixture(scope="module")
def tab(stylegan_backend):  # noqa: F811
    from modules.ui.gan_tab import GanTab

    tab = GanTab(stylegan_backend)
    with gr.Blocks():
        tab.build()
    return tab


def _title(tab, name: str) -> str:
    return next(t for t in tab.titles() if t.startswith(name))


def test_the_seed_plane_pad_takes_translate_rotate_and_noise_mode(tab):
    model = _title(tab, "sg3t")
    settings = [model, 0.7, "1", None, "", 1]
    plain = tab.plane_from_numbers(2, 0, *settings, "const", 0.0, 0.0, 0.0, None)[tab.plane_image]
    moved = tab.plane_from_numbers(2, 0, *settings, "const", 0.3, -0.2, 20.0, None)[tab.plane_image]
    assert not np.array_equal(np.asarray(plain), np.asarray(moved))
    sg2 = [_title(tab, "sg2.pkl"), 0.7, None, None, "", 1]  # StyleGAN3 has no noise inputs; StyleGAN2 has
    loud = tab.plane_from_numbers(2, 0, *sg2, "const", 0.0, 0.0, 0.0, None)[tab.plane_image]
    quiet = tab.plane_from_numbers(2, 0, *sg2, "none", 0.0, 0.0, 0.0, None)[tab.plane_image]
    assert not np.array_equal(np.asarray(loud), np.asarray(quiet))
    # Point (2, 0) is seed 2: moved as gen_images.py --translate 0.3,-0.2 --rotate 20 moves it (upscaled 8x).
    assert _within_one(moved.resize((32, 32), 0), nvidia_outputs("sg3t")["seed2_tr_png"])


def test_a_latent_import_sets_noise_mode_translate_rotate_and_mix_to(tab, tmp_path):
    from modules.capabilities.gan.state import export_text

    model = _title(tab, "sg3t")
    made = tab.sample(model, "4", 0.7, "1", None, "9", 2, "none", 0.25, 0.5, 15.0, 6, "")
    path = tmp_path / "latents.json"
    path.write_text(export_text(made[tab.last_states]), encoding="utf-8")
    values = tab.import_latents(str(path), model)
    assert values[tab.noise_mode] == "none" and values[tab.mix_to] == 6
    assert (values[tab.translate_x], values[tab.translate_y], values[tab.rotate]) == (0.25, 0.5, 15.0)
    again = tab.sample(model, values[tab.seeds], values[tab.psi], values.get(tab.class_name), None, values[tab.mix_seed],
                       values[tab.mix_from], values[tab.noise_mode], values[tab.translate_x], values[tab.translate_y],
                       values[tab.rotate], values[tab.mix_to], "")
    first = made[tab.gallery][0][0]
    assert np.array_equal(np.asarray(again[tab.gallery][0][0]), np.asarray(first))
