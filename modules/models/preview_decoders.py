"""The small decoders of live previews, from models/VAE-approx (never downloaded): A1111's "Approx NN"
(`model.pt` for SD 1.x/2.x, `vaeapprox-sdxl.pt` for SDXL: eight small convolutions, weights only) and TAESD
(diffusers' AutoencoderTiny: a diffusers folder `taesd/`/`taesdxl/`, or the decoder-only file
`taesd_decoder.safetensors`/`taesdxl_decoder.safetensors` (.pth too, through the weights-only unpickler)).

Only the model manager loads them (`PipelineManager.preview_decoder`), so they are cached like every weight."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from modules.errors import BadModelFile
from modules.models.building import BUILD_LOCK

FOLDER = "VAE-approx"
APPROX_NN, TAESD = "Approx NN", "TAESD"


class ApproxNN(nn.Module):
    """A1111's VAEApprox: latents (as the sampler holds them) → RGB in [-1, 1] at twice the latent's side."""

    PADDING = 11  # what the eight unpadded convolutions take off each side

    def __init__(self, latent_channels: int = 4):
        super().__init__()
        widths = (latent_channels, 8, 16, 32, 64, 32, 16, 8, 3)
        kernels = (7, 5, 3, 3, 3, 3, 3, 3)
        for n, kernel in enumerate(kernels, 1):
            setattr(self, f"conv{n}", nn.Conv2d(widths[n - 1], widths[n], kernel))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.interpolate(x, (x.shape[2] * 2, x.shape[3] * 2))
        x = nn.functional.pad(x, (self.PADDING,) * 4)
        for n in range(1, 9):
            x = nn.functional.leaky_relu(getattr(self, f"conv{n}")(x), 0.1)
        return x


def files_for(folder: Path, method: str, approx_nn_file: str, taesd_name: str) -> list[Path]:
    """Where `method`'s weights for a latent format may be, in the order they are looked for."""
    if method == APPROX_NN and approx_nn_file:
        return [folder / approx_nn_file]
    if method == TAESD and taesd_name:
        return [folder / taesd_name, *(folder / f"{taesd_name}_decoder{suffix}" for suffix in (".safetensors", ".pth"))]
    return []


def _state_dict(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    from modules.models.pickles import is_safetensors_file, load_pickle_state_dict

    if path.suffix == ".safetensors" and is_safetensors_file(path):
        return load_file(str(path))
    return load_pickle_state_dict(path)


def load_approx_nn(path: Path, latent_channels: int) -> ApproxNN:
    state = _state_dict(path)
    model = ApproxNN(latent_channels)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise BadModelFile(path, f"not an Approx NN preview model for {latent_channels} latent channels "
                                 f"({str(e)[:160]})") from None
    return model.eval()


def load_taesd(path: Path, latent_channels: int):
    """A diffusers AutoencoderTiny: a folder (config.json and weights) or a decoder-only file in TAESD's
    own key layout (`N.…` of its nn.Sequential, whose first layer is the clamp diffusers applies itself)."""
    from diffusers import AutoencoderTiny

    if path.is_dir():
        try:
            with BUILD_LOCK:
                model = AutoencoderTiny.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError, RuntimeError) as e:
            raise BadModelFile(path, f"not a diffusers AutoencoderTiny folder ({str(e)[:160]})") from None
        return model.eval()
    state = _state_dict(path)
    renamed = {}
    for key, tensor in state.items():
        index, _, rest = key.partition(".")
        if not index.isdigit() or int(index) < 1:
            raise BadModelFile(path, f"not a TAESD decoder: unexpected weight {key[:60]!r}")
        renamed[f"layers.{int(index) - 1}.{rest}"] = tensor
    with BUILD_LOCK:
        model = AutoencoderTiny(latent_channels=latent_channels)
    model.encoder = None  # a decoder-only file: previews never encode
    try:
        model.decoder.load_state_dict(renamed)
    except RuntimeError as e:
        raise BadModelFile(path, f"the weights do not fit TAESD's decoder ({str(e)[:160]})") from None
    return model.eval()


def load(method: str, path: Path, latent_channels: int) -> nn.Module:
    return load_approx_nn(path, latent_channels) if method == APPROX_NN else load_taesd(path, latent_channels)
