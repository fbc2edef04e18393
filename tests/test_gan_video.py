"""Interpolation videos between seeds (GIF and MP4), and the per-layer maths (truncation cutoff,
style mixing) on a toy generator with one w per layer, the StyleGAN convention."""
from __future__ import annotations

import re
from pathlib import Path

import imageio.v2 as imageio
import pytest
import torch
from torch import nn

from modules.errors import InvalidRequest
from modules.capabilities.gan import run as gan
from modules.capabilities.gan import gan_video
from modules.capabilities.gan.request import GanRequest, GanVideoRequest
from modules.capabilities.gan.video import frame_images, mp4_available, slerp
from modules.generation.seeds import seed_latent
from modules.jobs import Job
from modules.models.zoo_registry import ZooModelInfo
from tests.test_gan import gan_backend, loaded_gan  # noqa: F401 - fixture


def test_slerp_keeps_the_ends_and_walks_the_sphere():
    a, b = seed_latent(1, 32), seed_latent(2, 32)
    path = slerp(a, b, torch.tensor([0.0, 0.25, 0.5, 1.0]))
    assert torch.allclose(path[0], a, atol=1e-6) and torch.allclose(path[-1], b, atol=1e-6)
    norms = path.norm(dim=1)
    assert torch.allclose(norms[2], (a.norm() + b.norm()) / 2, atol=1e-4)  # no dip through the middle
    assert (a + b).norm() / 2 < norms[2] - 0.5


@pytest.mark.parametrize("space", ["w", "z"])
def test_the_path_starts_and_ends_on_the_key_seeds(gan_backend, space):  # noqa: F811
    _, generator = loaded_gan(gan_backend, "tiny-gan")
    request = GanVideoRequest(model="tiny-gan", seeds="5,9", frames=4, loop=False, class_name="square",
                              truncation_psi=0.9, space=space).validated()
    frames = frame_images(request, generator)
    keys = gan.synthesize(generator, torch.stack([seed_latent(5, 8), seed_latent(9, 8)]), torch.tensor([1, 1]), 0.9)
    assert len(frames) == 5  # 4 steps and the last seed
    assert torch.allclose(frames[0], keys[0], atol=1e-5) and torch.allclose(frames[-1], keys[1], atol=1e-5)
    assert (frames[1] - frames[0]).abs().max() > 0


def test_gif_video_loops_back_and_is_saved(gan_backend):  # noqa: F811
    result = gan_backend.run(gan_video, GanVideoRequest(model="tiny-gan", seeds="0-2", frames=4, fps=10, loop=True,
                                                        format="gif", size=64))
    assert result.frame_count == 12 and result.path.suffix == ".gif"
    assert result.path.parent.parent.name == "gan-videos" and re.fullmatch(r"\d{5}-0-2\.gif", result.path.name)
    frames = imageio.mimread(result.path)
    assert len(frames) == 12 and frames[0].shape[:2] == (64, 64)
    assert "Interpolation: lerp w" in result.infotext and "Loop: yes" in result.infotext


@pytest.mark.skipif(not mp4_available(), reason="imageio-ffmpeg has no bundled ffmpeg here")
def test_mp4_video_is_written_offline_with_the_bundled_ffmpeg(gan_backend):  # noqa: F811
    result = gan_backend.run(gan_video, GanVideoRequest(model="tiny-gan", seeds="0,1", frames=6, fps=12, loop=False,
                                                        format="mp4", size=64, space="z"))
    assert result.path.suffix == ".mp4" and result.frame_count == 7
    with imageio.get_reader(result.path, format="FFMPEG") as reader:
        assert sum(1 for _ in reader) == 7


@pytest.mark.parametrize("values, field", [
    ({"seeds": "4"}, "seeds"), ({"format": "avi"}, "format"), ({"size": 100}, "size"),
    ({"frames": 1}, "frames"), ({"space": "x"}, "space"), ({"class_name": "All classes"}, "class_name"),
])
def test_bad_video_values_name_the_field(values, field):
    with pytest.raises(InvalidRequest) as error:
        GanVideoRequest(**{"seeds": "0,1", **values}).validated()
    assert error.value.field == field


class LayeredToy(nn.Module):
    """One w per layer (num_ws = 3); its "image" is the ws themselves, so the test reads them back."""
    z_dim, num_ws, img_resolution, class_names = 4, 3, 2, ("a", "b")

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.register_buffer("w_avg", torch.tensor([[0.5, 0.5, 0.5, 0.5], [-0.5, -0.5, -0.5, -0.5]]))

    def mapping(self, z, class_idx):
        return z / 10 + class_idx[:, None].float() / 10

    def synthesis(self, ws):
        return (ws * self.scale).reshape(len(ws), 3, 2, 2)


def test_cutoff_truncates_only_the_first_layers_and_mixing_swaps_the_last():
    toy = LayeredToy()
    z = seed_latent(1, 4)[None]
    w, w_avg = toy.mapping(z, torch.tensor([1])), toy.w_avg[1]
    ws = gan.synthesize(toy, z, torch.tensor([1]), truncation_psi=0, truncation_cutoff=1).reshape(3, 4)
    assert torch.allclose(ws[0], w_avg) and torch.allclose(ws[1], w[0]) and torch.allclose(ws[2], w[0])
    mix_z = seed_latent(2, 4)[None]
    mixed = gan.synthesize(toy, z, torch.tensor([1]), 1.0, None, mix_z, mix_from=2).reshape(3, 4)
    assert torch.allclose(mixed[:2], w.expand(2, -1))
    assert torch.allclose(mixed[2], toy.mapping(mix_z, torch.tensor([1]))[0])


def test_a_per_layer_model_takes_cutoff_and_style_mix_from_the_request(tmp_path):
    info = ZooModelInfo(Path("toy.safetensors"), "toy.safetensors", "gan", sha256="ab" * 32)
    request = GanRequest(seeds="1", truncation_psi=0.5, truncation_cutoff=2, style_mix_seed=7, style_mix_from=1,
                         class_name="b", save_images=False).validated()
    result = gan.sample(request, LayeredToy(), info, Job("gan"), None)
    assert "Truncation cutoff: 2" in result.infotext and "Style mix seed: 7, Style mix from: 1" in result.infotext
    with pytest.raises(InvalidRequest, match="style_mix_from: this model has 3 layers, got 4"):
        gan.sample(GanRequest(seeds="1", style_mix_seed=7, style_mix_from=4).validated(), LayeredToy(), info,
                   Job("gan"), None)
