"""Stand-alone Stable Diffusion VAE files in models/VAE: find them and load one as a diffusers AutoencoderKL.

A VAE file holds weights only, so the architecture is read from the weights themselves (levels,
widths, blocks per level, latent channels, mid-block attention), which fits SD 1.x/2.x/SDXL VAEs
and any smaller ones. Two things weights cannot tell:

    norm_num_groups  gcd(32, narrowest width): 32 for every released SD VAE
    scaling_factor   0.13025 if the file name mentions "xl", else 0.18215 (SD 1.x/2.x)

A diffusers ``config.json`` beside the file as ``<stem>.json`` overrides the guess. Both the
original (LDM) key layout and diffusers' layout load; ``.ckpt``/``.pt`` pickles go through the
weights-only unpickler. Only the model manager loads them (``manager.use(ModelRef(VAE_FILE, name))``).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from modules.errors import BadModelFile, ModelNotFound
from modules.models import folder_walk
from modules.models.building import BUILD_LOCK

SUFFIXES = (".safetensors", ".pt", ".ckpt", ".bin")
PREFIXES = ("first_stage_model.", "vae.", "model.")
SD_SCALING, SDXL_SCALING = 0.18215, 0.13025


@dataclass(frozen=True)
class VaeFile:
    path: Path
    name: str    # relative to its folder

    @property
    def stamp(self) -> tuple:
        stat = self.path.stat()
        return (str(folder_walk.real_path(self.path)), stat.st_size, stat.st_mtime_ns)


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    from modules.models.pickles import is_safetensors_file, load_pickle_state_dict

    if not path.is_file():
        raise BadModelFile(path, "file not found")
    if path.suffix.lower() == ".safetensors" and is_safetensors_file(path):
        from safetensors.torch import load_file
        try:
            state = load_file(str(path))
        except Exception as e:  # noqa: BLE001 - safetensors raises several types for damaged files
            raise BadModelFile(path, f"not a readable .safetensors file ({e})") from None
    else:
        state = load_pickle_state_dict(path)
    for prefix in PREFIXES:
        if any(k.startswith(prefix + "encoder.") for k in state):
            state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            break
    if not any(k.startswith("encoder.") for k in state) or not any(k.startswith("decoder.") for k in state):
        raise BadModelFile(path, "no VAE encoder/decoder weights in this file (is it a full checkpoint or a LoRA?)")
    return state


def _levels(state: dict, pattern: str) -> list[int]:
    return sorted({int(m.group(1)) for k in state if (m := re.match(pattern, k))})


def infer_config(state: dict[str, torch.Tensor], name: str) -> dict:
    """An AutoencoderKL config from the shapes of the weights (either key layout)."""
    ldm = any(k.startswith("encoder.down.") for k in state)
    if ldm:
        levels = _levels(state, r"encoder\.down\.(\d+)\.")
        widths = [state[f"encoder.down.{i}.block.0.conv1.weight"].shape[0] for i in levels]
        blocks = len(_levels(state, r"encoder\.down\.0\.block\.(\d+)\."))
        attention = any(k.startswith("encoder.mid.attn_1.") for k in state)
    else:
        levels = _levels(state, r"encoder\.down_blocks\.(\d+)\.")
        widths = [state[f"encoder.down_blocks.{i}.resnets.0.conv1.weight"].shape[0] for i in levels]
        blocks = len(_levels(state, r"encoder\.down_blocks\.0\.resnets\.(\d+)\."))
        attention = any(k.startswith("encoder.mid_block.attentions.") for k in state)
    latent_channels = state["encoder.conv_out.weight"].shape[0] // 2
    return {
        "in_channels": int(state["encoder.conv_in.weight"].shape[1]),
        "out_channels": int(state["decoder.conv_out.weight"].shape[0]),
        "down_block_types": ["DownEncoderBlock2D"] * len(widths),
        "up_block_types": ["UpDecoderBlock2D"] * len(widths),
        "block_out_channels": [int(w) for w in widths],
        "layers_per_block": int(blocks),
        "latent_channels": int(latent_channels),
        "norm_num_groups": math.gcd(32, int(min(widths))),
        "sample_size": 512,
        "scaling_factor": SDXL_SCALING if "xl" in name.lower() else SD_SCALING,
        "use_quant_conv": "quant_conv.weight" in state,
        "use_post_quant_conv": "post_quant_conv.weight" in state,
        "mid_block_add_attention": attention,
    }


def load_vae_file(path: str | Path, dtype: torch.dtype = torch.float32):
    """A diffusers AutoencoderKL (eval, CPU) from a VAE file; BadModelFile says what is wrong."""
    from diffusers import AutoencoderKL
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    path = Path(path)
    state = read_state_dict(path)
    try:
        config = infer_config(state, path.name)
    except (KeyError, IndexError, ValueError) as e:
        raise BadModelFile(path, f"the weights do not look like a Stable Diffusion VAE (missing {e})") from None
    sidecar = path.with_suffix(".json")
    if sidecar.is_file():
        try:
            config.update({k: v for k, v in json.loads(sidecar.read_text()).items() if not k.startswith("_")})
        except (OSError, ValueError) as e:
            raise BadModelFile(sidecar, f"config cannot be read ({e})") from None
    if any(k.startswith("encoder.down.") for k in state):
        state = convert_ldm_vae_checkpoint(state, config)
    try:
        with BUILD_LOCK:  # not while another thread's load has meta-device patches on (building.py)
            vae = AutoencoderKL(**config)
        missing, unexpected = vae.load_state_dict(state, strict=False)
    except (TypeError, ValueError, RuntimeError) as e:
        raise BadModelFile(path, f"the weights do not fit the VAE architecture read from them ({str(e)[:200]})") from None
    if missing or unexpected:
        raise BadModelFile(path, f"weights do not match: missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]}")
    return (vae if dtype == torch.float32 else vae.to(dtype=dtype)).eval()


class VaeFiles:
    """The VAE files of some folders. Loaded ones are kept in the model manager's cache, within its budget."""

    def __init__(self, folders: list[Path]):
        self.folders = folders

    def scan(self) -> list[VaeFile]:
        found: dict[Path, VaeFile] = {}
        for folder in self.folders:
            if folder.is_dir():
                for path in folder_walk.files(folder, SUFFIXES):  # no symlink loops, bounded
                    found.setdefault(folder_walk.real_path(path), VaeFile(path, path.relative_to(folder).as_posix()))
        return sorted(found.values(), key=lambda f: f.name.lower())

    def find(self, name: str) -> VaeFile:
        for vae_file in self.scan():
            if name in (vae_file.name, Path(vae_file.name).stem, str(vae_file.path)):
                return vae_file
        raise ModelNotFound("VAE file", name)
