"""Stand-alone Stable Diffusion VAE files in models/VAE: find them and load one as a diffusers AutoencoderKL.

A VAE file holds weights only, so the architecture is read from the weights themselves (levels,
widths, blocks per level, latent channels, mid-block attention), which fits SD 1.x/2.x/SDXL VAEs
and any smaller ones. Two things the shapes cannot tell:

    norm_num_groups  gcd(32, narrowest width): 32 for every released SD VAE
    scaling_factor   (and shift_factor) the latent format of the VAE's model family: see
                     `latent_family` for how the family is found

A diffusers ``config.json`` beside the file as ``<stem>.json`` overrides both. Both the
original (LDM) key layout and diffusers' layout load; ``.ckpt``/``.pt`` pickles go through the
weights-only unpickler. Only the model manager loads them (``manager.use(ModelRef(VAE_FILE, name))``).
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import torch

from modules.errors import BadModelFile
from modules.models import families
from modules.models.building import BUILD_LOCK
from modules.models.families import Family
from modules.models.model_folders import ModelFolders
from modules.models.safetensors_header import read_header

SUFFIXES = (".safetensors", ".pt", ".ckpt", ".bin")
PREFIXES = ("first_stage_model.", "vae.", "model.")
MODELSPEC_KEY = "modelspec.architecture"  # SAI model-spec metadata: "stable-diffusion-xl-v1-base/vae"


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The VAE's weights (prefixes such as first_stage_model. removed)."""
    return _read(path)[0]


def _read(path: Path) -> tuple[dict[str, torch.Tensor], Family | None]:
    """The VAE's weights, and the model family the file itself names: that of the full checkpoint
    the VAE came in, or its model-spec metadata; None when it names none."""
    from modules.models.pickles import is_safetensors_file, load_pickle_state_dict

    if not path.is_file():
        raise BadModelFile(path, "file not found")
    metadata: dict[str, str] = {}
    if path.suffix.lower() == ".safetensors" and is_safetensors_file(path):
        from safetensors.torch import load_file
        try:
            state = load_file(str(path))
            metadata = read_header(path)[1]
        except BadModelFile:
            raise
        except Exception as e:  # noqa: BLE001 - safetensors raises several types for damaged files
            raise BadModelFile(path, f"not a readable .safetensors file ({e})") from None
    else:
        state = load_pickle_state_dict(path)
    named = families.recognise_header({k: list(v.shape) for k, v in state.items() if hasattr(v, "shape")})
    if named is None and metadata.get(MODELSPEC_KEY):
        named = families.with_modelspec(metadata[MODELSPEC_KEY])
    for prefix in PREFIXES:
        if any(k.startswith(prefix + "encoder.") for k in state):
            state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            break
    if not any(k.startswith("encoder.") for k in state) or not any(k.startswith("decoder.") for k in state):
        raise BadModelFile(path, "no VAE encoder/decoder weights in this file (is it a full checkpoint or a LoRA?)")
    return state, named


def _levels(state: dict, pattern: str) -> list[int]:
    return sorted({int(m.group(1)) for k in state if (m := re.match(pattern, k))})


def latent_family(latent_channels: int, paired: Family | None = None) -> Family | None:
    """The family whose latent format (scaling and shift factors) a VAE's latents are in.

    The factors belong to the latent space a VAE was trained for, not to its architecture: the
    SD 1.x/2.x VAE and SDXL's have the same shapes (4 latent channels, widths 128-256-512-512),
    so the weights can only rule out families whose latents have another channel count; a file
    name says nothing reliable at all ("my-xl-vae" may be an SD 1.x VAE). So: the family the VAE
    is paired with when that fits (the checkpoint it is used with, or the checkpoint or model-spec
    metadata in its own file), else the first family with that many latent channels (SD 1.x, which
    most stand-alone VAE files are for; a `<stem>.json` config says otherwise), else None."""
    if paired is not None and paired.latent.channels == latent_channels:
        return paired
    return next((f for f in families.FAMILIES if f.latent.channels == latent_channels), None)


def infer_config(state: dict[str, torch.Tensor], family: Family | None = None) -> dict:
    """An AutoencoderKL config from the shapes of the weights (either key layout); the latent format
    from `latent_family(…, family)`, SD 1.x's when no family has this many latent channels."""
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
    latent = (latent_family(int(latent_channels), family) or families.by_name("sd1")).latent
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
        "scaling_factor": latent.scaling_factor,
        "shift_factor": latent.shift_factor or None,
        "use_quant_conv": "quant_conv.weight" in state,
        "use_post_quant_conv": "post_quant_conv.weight" in state,
        "mid_block_add_attention": attention,
    }


def load_vae_file(path: str | Path, dtype: torch.dtype = torch.float32, family: Family | None = None):
    """A diffusers AutoencoderKL (eval, CPU) from a VAE file; BadModelFile says what is wrong.
    `family`: that of the checkpoint the VAE is used with, if any (it sets the latent format)."""
    from diffusers import AutoencoderKL
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    path = Path(path)
    state, named = _read(path)
    try:
        config = infer_config(state, family or named)
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


class VaeFiles(ModelFolders):
    """The VAE files of some folders, by their path relative to their folder. Loaded ones are kept in the model
    manager's cache, within its budget."""

    def __init__(self, folders: list[Path]):
        super().__init__(folders, SUFFIXES, "VAE file")
