"""StyleGAN2 and StyleGAN3 (T and R) networks give NVIDIA's numbers and pictures: our generators against outputs of
NVIDIA's official code on the same weights (tests/data/stylegan, made once outside the repository), seeds as
gen_images.py draws them through the real GAN Sampler and its REST route, and pickle -> .safetensors conversion."""
from __future__ import annotations

import base64
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from modules.models.stylegan_files import read_converted_generator, read_pickle_generator
from modules.zoo.stylegan3 import transform_matrix
from tests.stylegan_pickles import DATA, NETWORKS, nvidia_outputs, write_nvidia_pickle

ROOT = Path(__file__).resolve().parent.parent
TOLERANCE = 1e-4  # fp32, CPU
CASES = (("psi1", 1.0, None), ("psi07", 0.7, None), ("psi05_cut3", 0.5, 3))


@pytest.mark.parametrize("name", NETWORKS)
def test_our_generators_give_nvidias_numbers(name):
    generator = read_converted_generator(DATA / f"{name}.safetensors")
    ref = nvidia_outputs(name)
    z, c = torch.from_numpy(ref["z"]), torch.from_numpy(ref["c"])
    with torch.no_grad():
        for key, psi, cutoff in CASES:
            ws = generator.mapping(z, c, psi, cutoff)
            assert (ws - torch.from_numpy(ref[key + "_ws"])).abs().max() <= TOLERANCE, key
            image = generator.synthesis(ws, noise_mode="const")
            assert (image - torch.from_numpy(ref[key])).abs().max() <= TOLERANCE, key
            assert image.abs().max() > 0.05  # a picture, not a blank
        image = generator.synthesis(generator.mapping(z, c, 0.7), noise_mode="none")
        assert (image - torch.from_numpy(ref["noise_none"])).abs().max() <= TOLERANCE
        if "transformed" in ref:  # StyleGAN3's input moved as gen_images.py --translate 0.3,-0.2 --rotate 20
            image = generator.synthesis(generator.mapping(z, c, 0.7), transform=transform_matrix((0.3, -0.2), 20))
            assert (image - torch.from_numpy(ref["transformed"])).abs().max() <= TOLERANCE
            assert (image - torch.from_numpy(ref["psi07"])).abs().max() > 0.01


def test_noise_modes_differ_where_the_network_has_noise():
    generator = read_converted_generator(DATA / "sg2.safetensors")
    ws = generator.mapping(torch.from_numpy(nvidia_outputs("sg2")["z"]), None, 0.7)
    with torch.no_grad():
        const, none = generator.synthesis(ws, noise_mode="const"), generator.synthesis(ws, noise_mode="none")
        random = generator.synthesis(ws, noise_mode="random", generator=torch.Generator().manual_seed(1))
    assert (const - none).abs().max() > 1e-3 and (random - const).abs().max() > 1e-3


@pytest.mark.parametrize("name", ["sg2c", "sg3r"])
def test_conversion_round_trip_needs_no_pickle_and_keeps_the_pixels(tmp_path, name):
    pickle_path = write_nvidia_pickle(tmp_path / f"{name}.pkl", name)
    from_pickle, _ = read_pickle_generator(pickle_path)
    out = tmp_path / "converted" / f"{name}.safetensors"
    out.parent.mkdir()
    done = subprocess.run([sys.executable, "-m", "modules.models.convert_stylegan", str(pickle_path), str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env={"HF_HUB_OFFLINE": "1",
                                                                                     "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout
    pickle_path.unlink()
    converted = read_converted_generator(out)
    ref = nvidia_outputs(name)
    z, c = torch.from_numpy(ref["z"]), torch.from_numpy(ref["c"])
    with torch.no_grad():
        assert torch.equal(converted(z, c, 0.7), from_pickle(z, c, 0.7))
    from modules.zoo.model_files import read_metadata
    metadata = read_metadata(out)
    assert metadata["zoo_kind"] == "gan" and metadata["zoo_architecture"] == "stylegan3" if name == "sg3r" else True
    assert '"converted_from": "sg2c.pkl"' in metadata["zoo_info"] or name != "sg2c"


def test_the_converter_refuses_a_payload_naming_the_file(tmp_path):
    from tests.test_stylegan_pickle import _Payload
    marker = tmp_path / "ran"
    path = write_nvidia_pickle(tmp_path / "evil.pkl", "sg2", extra={"trap": _Payload(marker)})
    done = subprocess.run([sys.executable, "-m", "modules.models.convert_stylegan", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "evil.pkl: refused" in done.stderr
    assert not marker.exists() and not (tmp_path / "evil.safetensors").exists()


# ---------------------------------------------------------------- through the GAN Sampler and its REST route

@pytest.fixture(scope="module")
def stylegan_backend(tmp_path_factory):
    from modules.backend import Backend, BackendConfig
    from modules.devices import device_config

    root = tmp_path_factory.mktemp("stylegan-models")
    (root / "GAN").mkdir()
    for name in NETWORKS:
        write_nvidia_pickle(root / "GAN" / f"{name}.pkl", name)
    work = tmp_path_factory.mktemp("stylegan-work")
    return Backend(BackendConfig(models_dir=root, outdir=work / "outputs", cache_dir=work / "cache",
                                 devices=device_config("cpu")))


def _sample(backend, **values):
    from modules.capabilities.gan import GanRequest, gan
    values.setdefault("save_images", True)
    return backend.run(gan, GanRequest(**values))


def _within_one(picture: Image.Image, expected: np.ndarray) -> bool:
    got = np.asarray(picture.convert("RGB"), dtype=np.int16)
    return got.shape == expected.shape and int(np.abs(got - expected.astype(np.int16)).max()) <= 1


@pytest.mark.parametrize("name", NETWORKS)
def test_seeds_give_gen_images_pictures_in_the_saved_pngs(stylegan_backend, name):
    ref = nvidia_outputs(name)
    conditional = ref["c"].shape[1] > 0
    result = _sample(stylegan_backend, model=f"{name}.pkl", seeds="0-2", truncation_psi=0.7,
                     class_name="1" if conditional else None)
    assert len(result.paths) == 3
    for seed, path in enumerate(result.paths):
        with Image.open(path) as saved:
            assert _within_one(saved, ref[f"seed{seed}_png"]), f"seed {seed}"
            assert "Noise mode: const" in saved.info["parameters"]
    if name.startswith("sg3"):  # gen_images.py --translate 0.3,-0.2 --rotate 20
        moved = _sample(stylegan_backend, model=f"{name}.pkl", seeds="0-2", truncation_psi=0.7, translate="0.3,-0.2",
                        rotate=20, class_name="1" if conditional else None, save_images=False)
        for seed, picture in enumerate(moved.images):
            assert _within_one(picture, ref[f"seed{seed}_tr_png"]), f"seed {seed} moved"
        assert "Translate: 0.3 -0.2, Rotate: 20" in moved.infotexts[0]


def test_a_stylegan2_file_refuses_translate_and_the_builtin_gan_refuses_noise_mode(stylegan_backend):
    from modules.errors import InvalidRequest
    with pytest.raises(InvalidRequest, match="translate"):
        _sample(stylegan_backend, model="sg2.pkl", translate="0.1,0", save_images=False)
    with pytest.raises(InvalidRequest, match="rotate"):
        _sample(stylegan_backend, model="sg2c.pkl", rotate=5, class_name="0", save_images=False)
    with pytest.raises(InvalidRequest, match="noise_mode"):
        _sample(stylegan_backend, model="sg3t.pkl", noise_mode="loud", save_images=False)


def test_the_rest_route_samples_a_pickle_in_models_gan(stylegan_backend, tmp_path):
    from tests.inprocess_app import api_client
    ref = nvidia_outputs("sg3r")
    with api_client(stylegan_backend, tmp_path) as client:
        models = client.get("/zoo/v1/gan/models").json()
        listed = {m["model_name"]: m for m in models}
        assert {"sg2", "sg2c", "sg3t", "sg3r"} <= set(listed)
        assert listed["sg3r"]["classes"] == ["0", "1", "2"] and listed["sg3r"]["layers"] == 10
        response = client.post("/zoo/v1/gan/sample", json={"model": "sg3r.pkl", "seeds": "0,1", "truncation_psi": 0.7,
                                                            "class_name": 1})
        assert response.status_code == 200, response.text
        images = [Image.open(io.BytesIO(base64.b64decode(i))) for i in response.json()["images"]]
        assert all(_within_one(image, ref[f"seed{n}_png"]) for n, image in enumerate(images))
        refused = client.post("/zoo/v1/gan/sample", json={"model": "sg2.pkl", "rotate": 10})
        assert refused.status_code == 422 and "rotate" in refused.text


def test_a_refused_pickle_in_models_gan_is_listed_as_unusable_naming_the_file(tmp_path):
    from modules.models.hashing import HashCache
    from modules.models.zoo_registry import ZooRegistry
    from tests.test_stylegan_pickle import _Payload
    (tmp_path / "GAN").mkdir()
    marker = tmp_path / "ran"
    write_nvidia_pickle(tmp_path / "GAN" / "evil.pkl", "sg2", extra={"trap": _Payload(marker)})
    write_nvidia_pickle(tmp_path / "GAN" / "pickle-renamed.safetensors", "sg2", extra={"trap": _Payload(marker)})
    write_nvidia_pickle(tmp_path / "GAN" / "good.pkl", "sg3t")
    registry = ZooRegistry(tmp_path, HashCache(tmp_path / "hashes.json"))
    found = {m.name: m for m in registry.scan()}
    assert found["good.pkl"].usable
    assert "refused" in found["evil.pkl"].error and "system" in found["evil.pkl"].error
    assert not found["pickle-renamed.safetensors"].usable
    assert not marker.exists()


# ---------------------------------------------------------------- style mixing

def test_style_mixing_over_every_layer_is_the_mix_seeds_image_and_over_none_the_base_seeds(stylegan_backend):
    def image(**values):
        picture = _sample(stylegan_backend, model="sg3t.pkl", truncation_psi=0.7, save_images=False, **values).images[0]
        return np.asarray(picture, dtype=np.int16)
    base, mix = image(seeds="4"), image(seeds="9")
    assert np.array_equal(image(seeds="4", style_mix_seed=9, style_mix_from=0), mix)
    assert np.array_equal(image(seeds="4", style_mix_seed=9, style_mix_from=16), base)  # num_ws: nothing mixed
    between = image(seeds="4", style_mix_seed=9, style_mix_from=2, style_mix_to=8)
    assert not np.array_equal(between, base) and not np.array_equal(between, mix)


def test_a_style_mixing_grid_has_the_seeds_down_the_side_and_the_mix_seeds_across(stylegan_backend):
    result = _sample(stylegan_backend, model="sg2c.pkl", seeds="1,2", style_mix_seeds="5,6,7", style_mix_from=2,
                     style_mix_to=4, class_name="3", save_images=False)
    assert len(result.images) == 6 and result.captions[1] == "Seed 1 × styles of 6 · 3"
    assert result.grid.size == (4 * 17 - 1, 3 * 17 - 1)
    grid = np.asarray(result.grid, dtype=np.int16)

    def cell(row, column):
        return grid[row * 17:row * 17 + 16, column * 17:column * 17 + 16]
    alone = _sample(stylegan_backend, model="sg2c.pkl", seeds="6,2", class_name="3", save_images=False).images
    assert np.array_equal(cell(0, 2), np.asarray(alone[0], dtype=np.int16))  # column seed 6 on top
    assert np.array_equal(cell(2, 0), np.asarray(alone[1], dtype=np.int16))  # row seed 2 at the side
    assert np.array_equal(cell(1, 2), np.asarray(result.images[1], dtype=np.int16))
    assert "Style mix seed: 6, Style mix from: 2, Style mix to: 4" in result.infotexts[1]
    from modules.errors import InvalidRequest
    with pytest.raises(InvalidRequest, match="style_mix_to: this model has 6 layers"):
        _sample(stylegan_backend, model="sg2c.pkl", seeds="1", style_mix_seeds="5", style_mix_to=7, save_images=False)


# ---------------------------------------------------------------- latent directions

@pytest.mark.parametrize("name", ["sg2", "sg3t", "sg3r"])
@pytest.mark.parametrize("method", ["sefa", "ganspace"])
def test_directions_are_unit_vectors_orthogonal_to_each_other(name, method):
    from modules.capabilities.gan import directions
    generator = read_converted_generator(DATA / f"{name}.safetensors")
    found = directions.sefa(generator, (0, 6), 8) if method == "sefa" else \
        directions.ganspace(generator, 0, 8, samples=512)
    v = found.vectors.double()
    assert v.shape == (8, 32)
    assert torch.allclose(v @ v.t(), torch.eye(8, dtype=torch.float64), atol=1e-5)
    assert list(found.strengths) == sorted(found.strengths, reverse=True)
    again = directions.parse_direction_file(found.to_json("m", "h"), 32)
    assert torch.equal(again.vectors, found.vectors) and again.layers == found.layers


def test_a_direction_moves_the_picture_and_strength_zero_does_not(stylegan_backend, tmp_path):
    from tests.inprocess_app import api_client
    with api_client(stylegan_backend, tmp_path) as client:
        found = client.post("/zoo/v1/gan/directions", json={"model": "sg3t.pkl", "method": "sefa", "layers": [0, 8],
                                                            "count": 4})
        assert found.status_code == 200, found.text
        file = found.json()
        assert file["format"] == "zoo-gan-directions/1" and len(file["directions"]) == 4 and file["layers"] == [0, 8]

        def picture(strength):
            edits = [{"direction": file["directions"][0], "strength": strength, "layers": file["layers"]}]
            body = client.post("/zoo/v1/gan/sample", json={"model": "sg3t.pkl", "seeds": "3", "directions": edits})
            assert body.status_code == 200, body.text
            return np.asarray(Image.open(io.BytesIO(base64.b64decode(body.json()["images"][0]))), dtype=np.int16)
        plain = np.asarray(_sample(stylegan_backend, model="sg3t.pkl", seeds="3", save_images=False).images[0],
                           dtype=np.int16)
        assert np.array_equal(picture(0.0), plain)
        assert np.abs(picture(8.0) - plain).max() > 10
        refused = client.post("/zoo/v1/gan/sample", json={"model": "sg3t.pkl", "seeds": "3", "directions": [
            {"direction": [1.0] * 5, "strength": 1, "layers": [0, 2]}]})
        assert refused.status_code == 422 and "directions" in refused.text
