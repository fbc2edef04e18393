"""The Latent Explorer's Gradio endpoints, called as scripts call them (gradio_client): results come back
as values, and a user's mistake as an exception whose message names the field (never as a "result")."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from modules.capabilities.latent import state as latent_state
from tests.test_latent_fixtures import latent_app, latent_backend, latent_models_dir  # noqa: F401 - fixtures


@pytest.fixture(scope="module")
def client(latent_app):
    from gradio_client import Client

    return Client(latent_app, verbose=False)


def test_latent_decode_returns_the_image_with_its_latent(client):
    image_path, message, *_ = client.predict("x-vae", "[0.5, -1]", api_name="/latent_decode")
    assert message == ""
    with Image.open(image_path) as image:
        assert image.size == (32, 32)
        state = latent_state.from_png(image)
    assert state.latent.tolist() == [0.5, -1.0] and state.model == "x-vae"


def test_latent_encode_returns_mu_and_sigma(client, tmp_path):
    from gradio_client import handle_file

    from tests.test_latent_fixtures import x_position_images

    images, _ = x_position_images(1, seed=11)
    Image.fromarray(images[0]).save(tmp_path / "circle.png")
    mu, sigma, reconstruction, message, *_ = client.predict("x-vae", handle_file(str(tmp_path / "circle.png")),
                                                            api_name="/latent_encode")
    assert message == ""
    assert len(json.loads(mu)) == 2 and all(s > 0 for s in json.loads(sigma))
    decoded, *_ = client.predict("x-vae", mu, api_name="/latent_decode")
    assert np.array_equal(np.asarray(Image.open(decoded)), np.asarray(Image.open(reconstruction)))


def test_latent_interpolate_returns_a_strip_and_animations(client):
    strip, files, message = client.predict("x-vae", "[-2, 0]", "[2, 0]", 5, "lerp", 8, api_name="/latent_interpolate")
    assert message == "" or "GIF only" in message
    with Image.open(strip) as image:
        assert image.width > 5 * 32
    assert any(str(f).endswith(".gif") for f in files)


@pytest.mark.parametrize("latent, expected", [
    ("[0.5]", "latent: has 1 numbers, but this model's latent_dim is 2"),
    ("[0.5, NaN]", "latent: dimension 1 is nan"),
    ("half", "latent: must be a JSON list of numbers"),
])
def test_a_bad_latent_gives_a_clear_message(client, latent, expected):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as info:
        client.predict("x-vae", latent, api_name="/latent_decode")
    assert expected in str(info.value)


def test_an_unreadable_image_gives_a_clear_message(client, tmp_path):
    from gradio_client import handle_file

    from gradio_client.exceptions import AppError

    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(AppError) as info:
        client.predict("x-vae", handle_file(str(tmp_path / "notes.png")), api_name="/latent_encode")
    assert "image: notes.png cannot be read as an image" in str(info.value)
