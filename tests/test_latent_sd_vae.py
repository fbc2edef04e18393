"""Latent Explorer's SD VAE mode on tiny VAEs: a checkpoint's own, and a stand-alone file in models/VAE."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from modules.errors import InvalidRequest, ModelNotFound
from modules.capabilities.latent import sd_vae as sd
from modules.capabilities.latent.sd_request import SdVaeDirectionsRequest, SdVaeEdit, SdVaeEncodeRequest
from modules.zoo import shapes
from modules.capabilities.latent.models import sd_vae_choices, using_sd_vae
from tests.test_latent_fixtures import latent_backend, latent_models_dir  # noqa: F401 - fixtures

SOURCES = ["checkpoint: tiny-sd15", "file: tiny-sd-vae.safetensors"]


@pytest.fixture(scope="module")
def picture():
    return Image.fromarray(shapes.make_dataset(1, seed=3, size=96).images[0])


def test_both_kinds_of_sd_vae_are_offered(latent_backend):
    choices = sd_vae_choices(latent_backend)
    assert any(c.startswith("checkpoint: tiny-sd15") for c in choices)
    assert "file: tiny-sd-vae.safetensors" in choices


def test_a_vae_file_in_the_original_layout_loads_as_the_vae_it_was_made_from(latent_backend):
    from tests.tiny_models import _tiny_vae

    torch.manual_seed(3)  # as tests/test_latent_fixtures.tiny_sd_vae_file made it
    original = _tiny_vae(scaling_factor=0.18215).eval()
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with using_sd_vae(latent_backend, "file: tiny-sd-vae") as vae, torch.no_grad():
        assert list(vae.config.block_out_channels) == list(original.config.block_out_channels)
        assert torch.allclose(vae.decode(vae.encode(x).latent_dist.mean).sample,
                              original.decode(original.encode(x).latent_dist.mean).sample, atol=1e-5)


@pytest.mark.parametrize("source", SOURCES)
def test_encode_gives_a_channel_latent_and_no_edit_decodes_like_the_vae(latent_backend, picture, source):
    request = SdVaeEncodeRequest(source, picture, 128).validated()
    with using_sd_vae(latent_backend, request.vae) as vae:
        current = sd.encode(request, vae)
        assert current.latent.shape == (4, 16, 16), "4 channels at 1/8 of 128 px"
        plain = sd.decode_latents(vae, current.latent[None])[0]
        edited = np.asarray(sd.decode(current, SdVaeEdit().validated(4, 0), vae))
    assert np.array_equal(plain, edited)
    assert edited.shape == (128, 128, 3)
    views = sd.channel_views(current.latent)
    assert len(views) == 4 and views[0][0].size == (128, 128) and views[0][1].startswith("channel 0: mean")


def test_channel_offset_and_scale_act_on_one_channel_in_its_own_sigma(latent_backend, picture):
    request = SdVaeEncodeRequest(SOURCES[0], picture, 64).validated()
    with using_sd_vae(latent_backend, request.vae) as vae:
        current = sd.encode(request, vae)
    edit = SdVaeEdit(offsets=[0, 2.0], scales=[1, 1, 0.0]).validated(4, 0)
    edited = sd.apply_edit(current, edit)
    mean, std = current.channel_mean, current.channel_std
    assert np.isclose(edited[1].mean(), mean[1] + 2 * std[1], atol=1e-4)
    assert np.allclose(edited[2], mean[2], atol=1e-5), "scale 0 flattens the channel to its mean"
    assert np.allclose(edited[[0, 3]], current.latent[[0, 3]])


def test_principal_directions_are_orthonormal_and_move_the_latent_by_their_sigma(latent_backend, picture):
    request = SdVaeEncodeRequest(SOURCES[1], picture, 64).validated()
    with using_sd_vae(latent_backend, request.vae) as vae:
        current = sd.encode(request, vae)
        directions = sd.principal_directions(SdVaeDirectionsRequest(SOURCES[1], None, 8, 3).validated(8), vae, 64)
    components = directions.components
    assert components.shape == (3, 4 * 8 * 8) and directions.images == 8
    assert np.allclose(components @ components.T, np.eye(3), atol=1e-4)
    assert np.all(np.diff(directions.stds) <= 1e-6), "largest variance first"
    edited = sd.apply_edit(current, SdVaeEdit(directions=[1.5]).validated(4, 3), directions)
    moved = (edited - current.latent).reshape(-1)
    assert np.isclose(moved @ components[0], 1.5 * directions.stds[0], rtol=1e-3)


def test_bad_sd_vae_requests_name_their_field(latent_backend, picture):
    with pytest.raises(InvalidRequest, match="size: must be a multiple of 64"):
        SdVaeEncodeRequest(SOURCES[0], picture, 100).validated()
    with pytest.raises(InvalidRequest, match="vae: pick a VAE"):
        SdVaeEncodeRequest("", picture).validated()
    with pytest.raises(InvalidRequest, match="offsets: has 6 values, but there are only 4"):
        SdVaeEdit(offsets=[0, 0, 0, 0, 1, 1]).validated(4, 0)
    with pytest.raises(InvalidRequest, match="directions: 4 images give at most 3"):
        SdVaeDirectionsRequest(SOURCES[0], None, 4, 5).validated(8)
    with pytest.raises(ModelNotFound, match="unknown VAE file 'nothing-here'"):
        with using_sd_vae(latent_backend, "file: nothing-here"):
            pass


def test_vae_dir_flag_adds_its_files(latent_models_dir, tmp_path):
    """--vae-dir: VAE files there are offered beside models/VAE's, and load."""
    from modules.backend import Backend, BackendConfig
    from modules.devices import device_config
    from tests.test_latent_fixtures import tiny_sd_vae_file

    extra = tmp_path / "more-vaes"
    extra.mkdir()
    tiny_sd_vae_file(extra / "extra-vae.safetensors")
    backend = Backend(BackendConfig(models_dir=latent_models_dir, outdir=tmp_path / "out", cache_dir=tmp_path / "cache",
                                    devices=device_config("cpu"), offline=True, vae_dirs=(extra,)))
    choices = sd_vae_choices(backend)
    assert "file: extra-vae.safetensors" in choices and "file: tiny-sd-vae.safetensors" in choices
    with using_sd_vae(backend, "file: extra-vae.safetensors") as vae:
        assert vae.config.latent_channels > 0


@pytest.mark.parametrize("source", ["tiny-sd15", "tiny-sd-vae.safetensors"])
def test_encode_edit_and_directions_run_as_jobs(latent_backend, picture, source):
    """Through the runner, as the tab and a script run them; a bare name finds a checkpoint or a VAE file."""
    from modules.capabilities import latent

    encoded = latent_backend.run(latent.SD_ENCODE, latent.SdVaeEncodeRequest(source, picture, 64))
    current = encoded.current
    assert current.vae.startswith(("checkpoint: ", "file: ")) and current.latent.shape == (4, 8, 8)
    assert len(encoded.channels) == 4 and encoded.image.size == (64, 64)
    directions = latent_backend.run(latent.SD_DIRECTIONS, latent.SdVaeDirectionsRequest(current.vae, None, 6, 2, 64))
    assert directions.components.shape == (2, 4 * 8 * 8)
    plain = latent_backend.run(latent.SD_DECODE, latent.SdVaeDecodeRequest(current, SdVaeEdit(), directions))
    assert np.array_equal(np.asarray(plain.image), np.asarray(encoded.image)), "no edit: the picture as encoded"
    moved = latent_backend.run(latent.SD_DECODE, latent.SdVaeDecodeRequest(current, SdVaeEdit(offsets=[2.0]),
                                                                          directions))
    assert not np.array_equal(np.asarray(moved.image), np.asarray(encoded.image))


def test_sd_vae_jobs_name_what_is_wrong(latent_backend, picture):
    from modules.capabilities import latent

    with pytest.raises(ModelNotFound, match="unknown VAE 'nothing'"):
        latent_backend.run(latent.SD_ENCODE, latent.SdVaeEncodeRequest("nothing", picture, 64))
    with pytest.raises(InvalidRequest, match="latent: encode an image first"):
        latent_backend.run(latent.SD_DECODE, latent.SdVaeDecodeRequest(None, SdVaeEdit()))
