"""GAN sampling as a user relies on it: seeds reproduce, ψ = 0 is the average image, the class
matters, latents travel in PNGs and files and come back as the very same pixels."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from modules.errors import InvalidRequest
from modules.capabilities.gan import gan as gan_capability
from modules.capabilities.gan import run as gan
from modules.capabilities.gan.request import ALL_CLASSES, GanRequest
from modules.capabilities.gan.state import export_text, parse_states, read_states, request_from_states
from modules.generation.seeds import PLANE_WIDTH


def make_gan(path, class_names=("circle", "square", "triangle"), seed=0):
    """A tiny GAN file with a non-zero w_avg, so "ψ = 0 is the average image" means something."""
    from modules.zoo.gan import GANConfig, Generator, save_gan

    torch.manual_seed(seed)
    generator = Generator(GANConfig(z_dim=8, w_dim=16, mapping_layers=2, channels=(8, 8, 8), image_size=32,
                                    class_names=tuple(class_names)))
    generator.w_avg_buffer.normal_()
    save_gan(path, generator.eval())
    return path


@pytest.fixture(scope="module")
def gan_backend(tmp_path_factory):
    from modules.backend import Backend, BackendConfig
    from modules.devices import device_config

    root = tmp_path_factory.mktemp("gan-models")
    make_gan(root / "GAN" / "tiny-gan.safetensors")
    make_gan(root / "GAN" / "tiny-unconditional.safetensors", class_names=("thing",), seed=1)
    work = tmp_path_factory.mktemp("gan-work")
    return Backend(BackendConfig(models_dir=root, outdir=work / "outputs", cache_dir=work / "cache",
                                 devices=device_config("cpu")))


def loaded_gan(backend, name):
    """(info, generator) of a GAN of the backend's models/GAN, as a job gets them from the manager."""
    from modules.models.refs import GAN, ModelRef

    with backend.manager.use(ModelRef(GAN, name)) as loaded:
        return loaded.info, loaded.module


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def run(backend, **values):
    values.setdefault("model", "tiny-gan")
    values.setdefault("save_images", False)
    return backend.run(gan_capability, GanRequest(**values))


def test_the_same_seed_gives_the_same_image_alone_or_in_a_batch(gan_backend):
    first = run(gan_backend, seeds="3,7", truncation_psi=0.8, class_name="square")
    again = run(gan_backend, seeds="3,7", truncation_psi=0.8, class_name="square")
    alone = run(gan_backend, seeds="7", truncation_psi=0.8, class_name="square")
    assert [s.seed for s in first.samples] == [3, 7]
    assert all(np.array_equal(pixels(a), pixels(b)) for a, b in zip(first.images, again.images))
    assert np.abs(pixels(first.images[1]) - pixels(alone.images[0])).max() <= 1  # batch maths may round differently
    assert not np.array_equal(pixels(first.images[0]), pixels(first.images[1]))


def test_psi_zero_gives_the_average_latent_image_for_every_seed(gan_backend):
    result = run(gan_backend, seeds="0-5", truncation_psi=0, class_name="triangle")
    _, generator = loaded_gan(gan_backend, "tiny-gan")
    with torch.inference_mode():
        average = gan.to_pil(generator.synthesis(generator.w_avg[2:3]).clamp(-1, 1))[0]
    for image in result.images:
        assert np.abs(pixels(image) - pixels(average)).max() <= 1
    plain = run(gan_backend, seeds="0-1", truncation_psi=1, class_name="triangle")
    assert not np.array_equal(pixels(plain.images[0]), pixels(plain.images[1]))


def test_the_class_changes_the_output_and_all_classes_makes_a_row_each(gan_backend):
    circle = run(gan_backend, seeds="4", class_name="circle").images[0]
    square = run(gan_backend, seeds="4", class_name="Square").images[0]  # names match case-insensitively
    assert np.abs(pixels(circle) - pixels(square)).max() > 8
    grid = run(gan_backend, seeds="0-3", class_name=ALL_CLASSES)
    assert [(s.class_index, s.seed) for s in grid.samples][:5] == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0)]
    assert grid.grid.size == (4 * 33 - 1, 3 * 33 - 1)  # 4 seeds across, 3 class rows, 1 px gaps
    assert np.array_equal(pixels(grid.images[4]), pixels(run(gan_backend, seeds="0", class_name=1).images[0]))


def test_an_all_classes_grid_is_near_square_not_a_strip(gan_backend):
    """One seed of every class was a 1-wide column (40 classes of the built-in model: a 32 x 1319 strip)."""
    one_seed = run(gan_backend, seeds="0", class_name=ALL_CLASSES)
    assert one_seed.grid.size == (3 * 33 - 1, 32)  # the three classes side by side
    assert gan.classes_per_row(1, 40) == 8  # the built-in model: 8 colours across, 5 shapes down
    assert gan.classes_per_row(8, 40) == 2  # 8 seeds: 16 x 20 images, each row two whole classes


def test_an_unconditional_model_has_no_class(gan_backend):
    result = run(gan_backend, model="tiny-unconditional", seeds="1,2")
    caps = gan.capabilities(loaded_gan(gan_backend, "tiny-unconditional")[1])
    assert not caps.conditional and "Class" not in result.infotext
    assert gan.class_indices("anything", caps) == [0]


@pytest.mark.parametrize("values, field, message", [
    ({"seeds": "1,x"}, "seeds", "'x' is not a seed or a range"),
    ({"seeds": "9-3"}, "seeds", "runs backwards"),
    ({"truncation_psi": 3}, "truncation_psi", "must be between -1 and 2"),
    ({"class_name": "hexagon"}, "class_name", "unknown class 'hexagon': this model has circle, square, triangle"),
    ({"truncation_cutoff": 2}, "truncation_cutoff", "no per-layer styles"),
    ({"style_mix_seed": 5}, "style_mix_seed", "no per-layer styles"),
    ({"position": (1, float("nan"))}, "position", "between 0 and"),
    ({"position": (1, 10 ** 400)}, "position", "must be two numbers"),  # too large for a float
    ({"latents": [{"z": [0.0] * 3}]}, "latents", "item 0 has 3 numbers; this model's z has 8"),
])
def test_a_bad_value_names_the_field_and_writes_nothing(gan_backend, values, field, message):
    outputs = gan_backend.config.outdir
    before = sorted(outputs.rglob("*.png")) if outputs.exists() else []
    with pytest.raises(InvalidRequest, match=re.escape(message)) as error:
        run(gan_backend, save_images=True, **values)
    assert error.value.field == field
    assert (sorted(outputs.rglob("*.png")) if outputs.exists() else []) == before


def test_saved_pngs_carry_seed_psi_class_model_and_latent(gan_backend):
    result = run(gan_backend, seeds="11,12", truncation_psi=0.7, class_name="circle", save_images=True)
    info, _ = loaded_gan(gan_backend, "tiny-gan")
    assert [p.name[6:] for p in result.paths] == ["11.png", "12.png"]
    assert re.fullmatch(r"\d{5}-11\.png", result.paths[0].name)
    assert result.paths[0].parent.parent.name == "gan-images" and result.grid_path.parent.parent.name == "gan-grids"
    with Image.open(result.paths[0]) as image:
        parameters, state = image.info["parameters"], json.loads(image.info["zoo_gan"])
    assert parameters == (f"Seed: 11, Truncation psi: 0.7, Class: circle, Size: 32x32, Model hash: {info.shorthash}, "
                          f"Model: tiny-gan, Version: {parameters.rsplit('Version: ', 1)[1]}")
    assert state["seed"] == 11 and state["class"] == "circle" and state["truncation_psi"] == 0.7
    assert state["model"] == "tiny-gan" and state["model_hash"] == info.sha256
    assert torch.equal(torch.tensor(state["z"]), result.samples[0].z)


def test_export_import_round_trip_gives_the_same_pixels(gan_backend, tmp_path):
    original = run(gan_backend, seeds="20-22", truncation_psi=0.6, class_name="triangle")
    exported = tmp_path / "latents.json"
    exported.write_text(export_text(original.states))
    states = read_states(exported)
    restored = gan_backend.run(gan_capability, request_from_states(states, "tiny-gan"))
    assert [s.seed for s in restored.samples] == [20, 21, 22] and restored.request.truncation_psi == 0.6
    assert all(np.array_equal(pixels(a), pixels(b)) for a, b in zip(original.images, restored.images))


def test_a_seed_plane_image_dropped_back_restores_its_exact_latent(gan_backend):
    at_seed = run(gan_backend, position=(3, 1), class_name="square")
    assert np.array_equal(pixels(at_seed.images[0]), pixels(run(gan_backend, seeds=3 + PLANE_WIDTH,
                                                                    class_name="square").images[0]))
    between = run(gan_backend, position=(3.37, 1.5), class_name="square", save_images=True)
    assert "Seed plane: 3.37 1.5" in between.infotext and between.paths[0].name.endswith(f"-{3 + 2 * PLANE_WIDTH}.png")
    states = read_states(between.paths[0])
    assert states[0]["position"] == [3.37, 1.5]
    restored = gan_backend.run(gan_capability, request_from_states(states, "tiny-gan"))
    assert np.array_equal(pixels(restored.images[0]), pixels(between.images[0]))


def test_a_saved_grid_carries_every_latent(gan_backend):
    grid = run(gan_backend, seeds="30,31", class_name=ALL_CLASSES, save_images=True)
    states = read_states(grid.grid_path)
    assert [(s["seed"], s["class"]) for s in states] == [(30, "circle"), (31, "circle"), (30, "square"),
                                                        (31, "square"), (30, "triangle"), (31, "triangle")]
    with Image.open(grid.grid_path) as image:
        assert image.info["parameters"].startswith("Seeds: 30,31, ")


def test_files_that_are_not_latents_get_a_clear_message(tmp_path):
    (tmp_path / "plain.png").write_bytes(b"")
    Image.new("RGB", (4, 4)).save(tmp_path / "plain.png")
    with pytest.raises(InvalidRequest, match="plain.png carries no GAN latent"):
        read_states(tmp_path / "plain.png")
    with pytest.raises(InvalidRequest, match="not a GAN latent file"):
        parse_states('{"format": "zoo-latent/1"}')


def test_extensions_hear_of_each_saved_gan_image_and_grid(gan_backend, monkeypatch):
    from modules.extensions.callbacks import IMAGE_SAVED

    heard = []
    monkeypatch.setattr(gan_backend.extensions.callbacks, "run",
                        lambda name, saved: heard.append((name, saved.tab, saved.path, saved.infotext)))
    result = run(gan_backend, seeds="21,22", class_name="circle", save_images=True)
    assert [(name, tab, path) for name, tab, path, _ in heard] == [
        (IMAGE_SAVED, "gan", result.paths[0]), (IMAGE_SAVED, "gan", result.paths[1]),
        (IMAGE_SAVED, "gan", result.grid_path)]
    assert heard[0][3] == result.infotexts[0]
    heard.clear()
    run(gan_backend, seeds="23", class_name="circle", save_images=False)
    assert heard == []  # nothing written, nothing told


GAN_PROBE = '''
from dataclasses import replace

from PIL import ImageOps

from modules.extensions import AlwaysVisible, Script

EVENTS = []


class GanProbe(Script):
    def title(self):
        return "GAN probe"

    def show(self, tab):
        return AlwaysVisible if tab == "gan" else False

    def ui(self, tab):
        import gradio as gr
        return [gr.Checkbox(False, label="Invert")]

    def process(self, p, invert):
        p.request = replace(p.request, truncation_psi=0.5)
        p.extra_generation_params["Probe"] = "on"

    def process_batch(self, p, invert, batch_number, prompts, seeds):
        EVENTS.append(("batch", batch_number, list(seeds)))

    def postprocess_image(self, p, pp, invert):
        if invert:
            pp.image = ImageOps.invert(pp.image.convert("RGB"))

    def postprocess(self, p, result, invert):
        EVENTS.append(len(result.images))
'''


def test_always_on_scripts_hook_into_the_gan_sampler(gan_backend, tmp_path):
    import sys

    from modules.extensions import Extensions
    from modules.extensions.scripts import ScriptCall
    from PIL import ImageOps
    from tests.test_extensions_fixtures import write_extension

    plain = run(gan_backend, seeds="3,4", truncation_psi=0.5, class_name="circle")
    write_extension(tmp_path / "ext", "gan_probe", {"gan_probe.py": GAN_PROBE})
    before = gan_backend.extensions
    try:
        Extensions.load_from(tmp_path / "ext", tmp_path / "state.json").attach(gan_backend)
        hooked = gan_backend.run(gan_capability, GanRequest(model="tiny-gan", seeds="3,4", truncation_psi=1.0,
                                                                   class_name="circle", save_images=True),
                                 scripts=ScriptCall(alwayson_scripts={"GAN probe": {"args": [True]}}))
        probe = next(s for s in gan_backend.extensions.scripts if s.title() == "GAN probe")
        events = sys.modules[type(probe).__module__].EVENTS
    finally:
        gan_backend.extensions = before
    assert events == [("batch", 0, [3, 4]), 2]  # process_batch once (a GAN job is one batch), postprocess
    assert "Truncation psi: 0.5" in hooked.infotexts[0]  # process() changed the request
    assert "Probe: on" in hooked.infotexts[0] and hooked.images[0].info["parameters"] == hooked.infotexts[0]

    inverted = pixels(ImageOps.invert(plain.images[0].convert("RGB")))
    assert np.array_equal(pixels(hooked.images[0]), inverted)  # postprocess_image ran before saving
    assert np.array_equal(pixels(Image.open(hooked.paths[0])), inverted)
    assert np.array_equal(pixels(hooked.grid.crop((0, 0, 32, 32))), inverted)


def test_a_loaded_generator_is_laid_out_for_inference_before_any_job_shares_it(gan_backend):
    """channels_last at load time (modules/zoo/gan.load_gan), not converted on first use by whichever job
    comes first: two jobs sharing the generator never see it half-converted."""
    from modules.models.refs import GAN, ModelRef

    with gan_backend.manager.use(ModelRef(GAN, "tiny-gan")) as loaded:
        convs = [m for m in loaded.module.modules() if isinstance(m, torch.nn.Conv2d)]
        assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)


def test_an_interrupted_gan_job_is_recorded_interrupted_not_failed(gan_backend):
    job = gan_backend.new_job("gan")
    job.interrupt()  # the user pressed Interrupt (or the client left) before the first chunk
    result = gan_backend.run(gan_capability, GanRequest(model="tiny-gan", seeds="0-3", save_images=False), job)
    assert job.state == "interrupted" and result.images == [] and result.grid is None


def test_out_of_memory_in_a_gan_job_says_what_to_make_smaller(gan_backend, monkeypatch):
    from modules.errors import UserError

    def no_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(gan, "synthesize", no_memory)
    job = gan_backend.new_job("gan")
    with pytest.raises(UserError) as error:
        gan_backend.run(gan_capability, GanRequest(model="tiny-gan", seeds="0-3", save_images=False), job)
    assert str(error.value) == "out of memory for 4 GAN images: try fewer seeds"
    assert job.state == "failed"
