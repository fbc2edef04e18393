"""Latent Explorer, below the UI: what a user relies on when moving sliders, encoding, interpolating,
traversing, saving and restoring latents, and what a bad input answers."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from modules.errors import BadModelFile, InvalidRequest
from modules.images import png_info
from modules.capabilities import latent
from modules.capabilities.latent import beta_vae as ops
from modules.capabilities.latent import data_map as latent_map, state as latent_state
from modules.capabilities.latent.request import (
    DataSetLatentRequest, LatentDecodeRequest, LatentEncodeRequest, LatentInterpolateRequest, LatentMapRequest,
    LatentTraverseRequest, RandomLatentRequest)
from tests.test_latent_fixtures import (  # noqa: F401 - fixtures
    beta_vae, latent_backend, latent_models_dir, shape_centre_x, x_position_images)


@pytest.fixture(scope="module")
def x_vae(latent_backend):
    return beta_vae(latent_backend, "x-vae")


@pytest.fixture(scope="module")
def random_vae(latent_backend):
    return beta_vae(latent_backend, "random-6d")


def decode(model, latent) -> np.ndarray:
    request = LatentDecodeRequest(model.title, list(latent)).validated(model.latent_dim)
    return np.asarray(ops.decode(request, model).image)


# ---------------------------------------------------------------- the sliders

def test_moving_the_position_x_slider_moves_the_shape_monotonically(x_vae):
    assert "position_x" in x_vae.factors, "the evaluation recorded which dimension follows x"
    d = x_vae.dims_of("position_x")[0]
    assert x_vae.dim_label(d) == f"z{d} · position_x"
    values = np.linspace(-2, 2, 9)
    centres = []
    for value in values:
        z = np.zeros(x_vae.latent_dim, np.float32)
        z[d] = value
        centres.append(shape_centre_x(decode(x_vae, z)[None])[0])
    steps = np.diff(centres)
    assert np.all(steps > 0) or np.all(steps < 0), f"x centre along z{d}: {np.round(centres, 2)}"
    assert abs(centres[-1] - centres[0]) > 6, "the shape should travel across a good part of the image"


def test_one_decode_is_the_image_of_that_latent_and_carries_it(x_vae):
    z = [0.5, -1.25]
    request = LatentDecodeRequest("x-vae", json.dumps(z)).validated(2)
    result = ops.decode(request, x_vae)
    assert result.image.size == (32, 32) and result.image.mode == "RGB"
    stored = latent_state.from_png(result.image)
    assert stored.latent.tolist() == z and stored.model == "x-vae" and stored.model_hash == x_vae.sha256
    again = ops.decode(request, x_vae)
    assert np.array_equal(np.asarray(again.image), np.asarray(result.image)), "same latent, same picture"


def test_randomize_is_reproducible_by_seed(latent_backend):
    def draw(seed):
        return latent_backend.run(latent.RANDOM, RandomLatentRequest(seed=seed, model="x-vae"))

    a, b, c = draw(42), draw(42), draw(43)
    assert a.seed == 42 and np.array_equal(a.latent, b.latent) and not np.array_equal(a.latent, c.latent)
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image))
    picked = RandomLatentRequest(seed=-1).validated()
    assert picked.seed >= 0, "-1 picks a seed and reports it"


def nearest_data_set_distance(images: np.ndarray, size: int) -> float:
    """Mean over images of the RMS pixel distance to the closest image of the evaluation data set."""
    from modules.zoo import shapes

    data = shapes.make_dataset(500, seed=latent_map.DATASET_SEED, size=size).images.astype(np.float32)
    distances = ((images.astype(np.float32)[:, None] - data[None]) ** 2).mean((2, 3, 4))
    return float(np.sqrt(distances.min(1)).mean())


def test_random_latents_decode_to_pictures_like_the_data_set_not_murky_blobs(latent_backend):
    """Randomize draws near the encodings of real pictures, where the decoder draws clear ones; a draw
    from the prior N(0, I) mixes the codes of several pictures (what a user saw as a dark blob)."""
    if not has_built_in(latent_backend):
        pytest.skip("the built-in β-VAE is not shipped")
    model = beta_vae(latent_backend, "shapes-beta-vae")
    drawn = [latent_backend.run(latent.RANDOM, RandomLatentRequest(seed, model="shapes-beta-vae"))
             for seed in range(24)]
    ours = np.stack([np.asarray(d.image) for d in drawn])
    prior = np.random.default_rng(0).standard_normal((24, model.latent_dim)).astype(np.float32)
    theirs = ops.decode_latents(model, prior)
    assert nearest_data_set_distance(ours, model.image_size) < 0.7 * nearest_data_set_distance(theirs, model.image_size)


def test_the_explorer_opens_on_an_encoded_data_set_image(latent_backend):
    from modules.zoo import shapes

    first = latent_backend.run(latent.DATASET, DataSetLatentRequest("x-vae", 0))
    x_vae = beta_vae(latent_backend, "x-vae")
    picture = shapes.make_dataset(1, seed=latent_map.DATASET_SEED, size=x_vae.image_size).images[0]
    mu, _ = ops.encode_images(x_vae, picture[None])
    assert first.index == 0 and np.allclose(first.latent, mu[0], atol=1e-5)
    assert np.array_equal(np.asarray(first.image), ops.decode_latents(x_vae, mu)[0])


def has_built_in(backend) -> bool:
    return any(m.name.startswith("shapes-beta-vae") for m in backend.zoo_registry.usable("beta_vae"))


def test_slider_decodes_do_not_wait_behind_a_stable_diffusion_job(latent_backend):
    """β-VAE jobs run under the model's own lock, not in the device's line: while a long job holds the
    device, dragging a slider still decodes (and is never refused by the per-user queue)."""
    from concurrent.futures import ThreadPoolExecutor

    lock = latent_backend.manager.device_lock
    assert lock.acquire(owner="someone-else")
    try:
        with ThreadPoolExecutor(1) as pool:
            moves = [pool.submit(latent_backend.runner.run, latent.DECODE, LatentDecodeRequest("x-vae", [v, 0.0]),
                                 owner="ui:dragging", queue_user="ui:dragging") for v in np.linspace(-2, 2, 12)]
            images = [move.result(timeout=60).image for move in moves]
    finally:
        lock.release()
    assert len(images) == 12


# ---------------------------------------------------------------- encode

def test_encode_then_decode_gives_back_the_image(x_vae):
    images, xs = x_position_images(4, seed=99)
    for image, x in zip(images, xs):
        result = ops.encode(LatentEncodeRequest("x-vae", Image.fromarray(image)).validated(), x_vae)
        assert result.mu.shape == result.sigma.shape == (2,) and np.all(result.sigma > 0)
        assert np.array_equal(np.asarray(result.reconstruction), decode(x_vae, result.mu)), \
            "the encoder's reconstruction is the decode of μ"
        recon = np.asarray(result.reconstruction).astype(float)
        assert np.abs(recon - image).mean() < 20, "a trained VAE reconstructs what it was trained on"
        assert abs(shape_centre_x(recon[None])[0] - shape_centre_x(image[None])[0]) < 2.0
        again = ops.encode(LatentEncodeRequest("x-vae", result.reconstruction).validated(), x_vae)
        d = x_vae.dims_of("position_x")[0]
        assert abs(again.mu[d] - result.mu[d]) < 0.35, "encoding the decode lands near the same x"


def test_encode_converts_mode_and_size(x_vae, tmp_path):
    image, _ = x_position_images(1, seed=5)
    big = Image.fromarray(image[0]).resize((100, 80))
    rgba = big.convert("RGBA")
    grey = big.convert("L")
    for variant in (big, rgba, grey):
        path = tmp_path / f"in-{variant.mode}.png"
        variant.save(path)
        result = ops.encode(LatentEncodeRequest("x-vae", str(path)).validated(), x_vae)
        assert result.input_image.size == (32, 32) and result.input_image.mode == "RGB"


# ---------------------------------------------------------------- interpolate, traverse, map

@pytest.mark.parametrize("method", ["lerp", "slerp"])
def test_interpolation_starts_and_ends_at_the_endpoint_decodes(x_vae, method, tmp_path):
    start, end = [-1.5, 0.3], [1.8, -0.7]
    request = LatentInterpolateRequest("x-vae", start, end, frames=7, method=method, fps=10).validated(2)
    result = ops.interpolate(request, x_vae, tmp_path)
    assert result.frames.shape == (7, 32, 32, 3)
    assert np.array_equal(result.latents[0], np.float32(start)) and np.array_equal(result.latents[-1], np.float32(end))
    assert np.abs(result.frames[0].astype(int) - decode(x_vae, start)).max() <= 1
    assert np.abs(result.frames[-1].astype(int) - decode(x_vae, end)).max() <= 1
    with Image.open(result.gif) as gif:
        assert gif.n_frames == 7 and gif.size[0] >= 128
    if result.mp4 is not None:
        assert result.mp4.stat().st_size > 0


def test_slerp_keeps_the_latent_length():
    a, b = np.array([2.0, 0.0], np.float32), np.array([0.0, 2.0], np.float32)
    middle = ops.interpolation_latents(a, b, 3, "slerp")[1]
    assert np.isclose(np.linalg.norm(middle), 2.0, atol=1e-5)
    assert np.isclose(np.linalg.norm(ops.interpolation_latents(a, b, 3, "lerp")[1]), np.sqrt(2), atol=1e-5)


def test_traverse_grid_has_a_row_per_dimension_and_a_column_per_value(random_vae):
    request = LatentTraverseRequest("random-6d", [0.0] * 6, [1, 4], k=2, steps=5).validated(6)
    grid = ops.traverse(request, random_vae)
    assert grid.width > 5 * 64 and 2 * 64 < grid.height < 3 * 64 + 40
    assert LatentTraverseRequest("random-6d", [0.0] * 6, "", 2, 5).validated(6).dims == list(range(6))


def test_map_grid_sets_the_two_dimensions_and_the_scatter_is_drawn(random_vae):
    request = LatentMapRequest("random-6d", [0.1] * 6, dim_x=2, dim_y=5, k=2, steps=3, factor="colour",
                               samples=60).validated(6)
    latents = ops.manifold_latents(request)
    assert latents[0, 2] == -2 and latents[0, 5] == 2, "top left is (x=-kσ, y=+kσ)"
    assert latents[-1, 2] == 2 and latents[-1, 5] == -2
    assert np.allclose(latents[:, [0, 1, 3, 4]], 0.1), "other dimensions keep the current latent"
    assert ops.manifold(request, random_vae).width > 3 * 64
    encoded = latent_map.encoded_dataset(random_vae, request.samples)
    assert latent_map.scatter(request, random_vae, encoded).size == (600, 460)


# ---------------------------------------------------------------- portable state

def test_export_import_round_trip_json_npy_and_png(x_vae, tmp_path):
    z = np.array([1.234567, -2.5], np.float32)
    state = x_vae.state(z)
    (tmp_path / "z.json").write_text(state.to_json())
    (tmp_path / "z.npy").write_bytes(latent_state.to_npy_bytes(state))
    result = ops.decode(LatentDecodeRequest("x-vae", z).validated(2), x_vae)
    png = ops.save_png(result.image, result.state, tmp_path)
    assert png.name.endswith(".png") and png.parent.name.count("-") == 2, "outputs/latent-images/<date>/"
    for name, path in (("json", tmp_path / "z.json"), ("npy", tmp_path / "z.npy"), ("png", png)):
        loaded = latent_state.load_file(path)
        assert np.allclose(loaded.latent, z, atol=1e-6), name
        if name != "npy":
            assert (loaded.model, loaded.model_hash) == ("x-vae", x_vae.sha256), name
    with Image.open(png) as image:
        assert "Model: x-vae" in image.info["parameters"], "PNG Info shows what made it"
        restored = ops.encode(LatentEncodeRequest("x-vae", image).validated(), x_vae)
    assert restored.restored is not None and np.allclose(restored.mu, z, atol=1e-6), \
        "dropping the saved PNG back restores the sliders exactly, not an encoding of its pixels"


def test_import_refuses_files_that_carry_no_latent_and_says_what_to_do(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "plain.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "photo.jpg")
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "other.json").write_text(json.dumps({"format": "other/1", "latent": [1]}))
    Image.new("RGB", (8, 8)).save(tmp_path / "damaged.png", pnginfo=png_info("x", {"zoo_latent": "{not json"}))
    for name, expected in (("plain.png", "carries no latent: only PNGs saved here with Save PNG do. To get the "
                                         "latent of this picture, drop it into Encode instead"),
                           ("photo.jpg", "is not a latent file: import a .json or .npy made by Export latent"),
                           ("bad.json", "is not valid JSON .*: import a file made by Export latent"),
                           ("damaged.png", "stored latent is damaged: save the picture again"),
                           ("other.json", "is not a zoo latent state")):
        with pytest.raises(InvalidRequest, match=expected) as info:
            latent_state.load_file(tmp_path / name)
        assert info.value.field == name
        if not name.endswith(".json"):
            assert "JSON" not in str(info.value), "a picture is never called bad JSON"


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("latent, expected", [
    ([0.0, 1.0, 2.0], "latent: has 3 numbers, but this model's latent_dim is 2"),
    ([0.0, float("nan")], "latent: dimension 1 is nan: every value must be a finite number"),
    ("[0, NaN]", "latent: dimension 1 is nan"),
    ([0.0, float("inf")], "latent: dimension 1 is inf"),
    ([0.0, 1e6], "latent: dimension 1 is 1e\\+06: values are in σ units"),
    ("zero, one", "latent: must be a JSON list of numbers"),
    ("", "latent: is empty"),
    ([[0.0, 1.0]], "latent: must be a flat list"),
    (3.0, "latent: must be a list of numbers, not a single value"),
])
def test_a_bad_latent_names_the_field_and_says_what_is_wrong(latent, expected):
    with pytest.raises(InvalidRequest, match=expected) as info:
        LatentDecodeRequest("x-vae", latent).validated(2)
    assert info.value.field == "latent"


def test_bad_images_are_refused_with_a_clear_message(x_vae, tmp_path):
    (tmp_path / "notes.png").write_text("this is not a picture")
    deep = Image.fromarray(np.zeros((40, 40), np.uint16))  # Pillow makes 16-bit greyscale of uint16 itself
    assert deep.mode == "I;16"
    deep.save(tmp_path / "deep.png")
    Image.new("RGB", (4, 4)).save(tmp_path / "tiny.png")
    cases = [(str(tmp_path / "notes.png"), "notes.png cannot be read as an image"),
             (str(tmp_path / "missing.png"), "file 'missing.png' not found"),
             (None, "no image given")]
    for value, expected in cases:
        with pytest.raises(InvalidRequest, match=expected):
            LatentEncodeRequest("x-vae", value).validated()
    for name, expected in (("deep.png", "image mode I;16 .* is not supported"), ("tiny.png", "image is 4×4")):
        request = LatentEncodeRequest("x-vae", str(tmp_path / name)).validated()
        with pytest.raises(InvalidRequest, match=expected) as info:
            ops.encode(request, x_vae)
        assert info.value.field == "image"
    with pytest.raises(InvalidRequest, match="pixel type float32"):
        LatentEncodeRequest("x-vae", np.zeros((32, 32, 3), np.float32)).validated()


@pytest.mark.parametrize("request_, expected", [
    (LatentInterpolateRequest("m", [0, 0], [1, 1], frames=1), "frames: must be between 2 and 120"),
    (LatentInterpolateRequest("m", [0, 0], [1, 1], method="cubic"), "method: must be one of lerp, slerp"),
    (LatentInterpolateRequest("m", [0, 0], [1]), "end: has 1 numbers"),
    (LatentTraverseRequest("m", [0, 0], [5]), "dims: must be between 0 and 1"),
    (LatentTraverseRequest("m", [0, 0], [0], k=0), "k: must be between 0.1 and 6"),
    (LatentMapRequest("m", [0, 0], 1, 1), "dim_y: must differ from dim_x"),
    (LatentMapRequest("m", [0, 0], 0, 1, factor="mood"), "factor: must be one of"),
])
def test_bad_values_of_the_other_tools_name_their_field(request_, expected):
    with pytest.raises(InvalidRequest, match=expected):
        request_.validated(2)


def test_an_unknown_model_is_named(latent_backend):
    from modules.errors import ModelNotFound

    with pytest.raises(ModelNotFound, match="unknown beta-vae model 'nope'"):
        beta_vae(latent_backend, "nope")


def test_a_broken_vae_file_is_named(tmp_path):
    from modules.models.vae_files import load_vae_file

    (tmp_path / "broken.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(BadModelFile, match="broken.safetensors"):
        load_vae_file(tmp_path / "broken.safetensors")
