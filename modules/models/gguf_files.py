"""A GGUF-quantised transformer (city96's flux1-dev-Q8_0.gguf, sd3.5_large-Q4_0.gguf) as a diffusers module.

The file holds the transformer alone, in its original key names (BFL's double_blocks.*, SAI's joint_blocks.*);
its VAE and text encoders come from component files as a transformer-only .safetensors file's do. The weights
stay quantised in memory (Q8_0 about 1.06 bytes per weight, Q4_0 0.56) and are dequantised layer by layer
into the compute dtype as each Linear runs (diffusers' GGUF quantizer). The header is checked first
(gguf_header.py): the library reads only a file whose every tensor is known to lie inside it."""
from __future__ import annotations

from pathlib import Path

import torch

from modules import compat
from modules.errors import BadModelFile
from modules.models import config_classes, gguf_header
from modules.models.families import Family

SUFFIX = ".gguf"


def is_gguf(path: Path) -> bool:
    return Path(path).suffix.lower() == SUFFIX


def load_transformer(path: Path, config_dir: Path, family: Family, compute_dtype: torch.dtype) -> torch.nn.Module:
    """The family's denoiser, built from `config_dir` (the file's sidecar config folder), with the GGUF
    file's weights converted by the family's own converter and kept quantised."""
    from diffusers import GGUFQuantizationConfig

    header = gguf_header.read_header(path)
    loadable = set(compat.gguf_loadable_types())
    for name, tensor in header.tensors.items():
        if tensor.type_name not in loadable:
            raise BadModelFile(path, f"GGUF tensor {name!r} is {tensor.type_name}, which cannot be loaded here")
    index = config_classes.check_model_index(config_dir, path)
    entry = index.get(family.denoiser)
    if not (isinstance(entry, (list, tuple)) and len(entry) == 2 and entry[0] == "diffusers"):
        raise BadModelFile(path, f"its config {config_dir.name} names no diffusers {family.denoiser}")
    cls = config_classes.component_class(entry[0], entry[1], path, "model_index.json")
    try:
        config = cls.load_config(str(config_dir), subfolder=family.denoiser)
        checkpoint = compat.gguf_tensors(path)
        state = family.converters[family.denoiser](None, config, checkpoint)
        del checkpoint
        module = cls.from_single_file(state, config=str(config_dir), subfolder=family.denoiser,
                                      quantization_config=GGUFQuantizationConfig(compute_dtype=compute_dtype),
                                      torch_dtype=compute_dtype, local_files_only=True)
    except BadModelFile:
        raise
    except (KeyError, ValueError, IndexError, RuntimeError, OSError, TypeError) as e:
        raise BadModelFile(path, f"its {family.denoiser} weights cannot be loaded from this GGUF file "
                                 f"({type(e).__name__}: {_first_line(e)})") from e
    missing = [name for name, t in [*module.named_parameters(), *module.named_buffers()] if t.is_meta]
    if missing:
        raise BadModelFile(path, f"is missing {len(missing)} {family.denoiser} weights (e.g. {', '.join(missing[:3])}): "
                                 f"damaged, or not the architecture its config {config_dir.name} describes")
    for owner_name, owner in module.named_modules():
        if isinstance(owner, torch.nn.Linear):
            continue  # diffusers' GGUFLinear dequantises these
        for name, param in owner.named_parameters(recurse=False):
            kind = compat.gguf_type_name(param)
            if kind is not None:
                raise BadModelFile(path, f"GGUF tensor for {owner_name}.{name} is {kind}, which only linear layers "
                                         "take: store it as F16 or F32")
    return module.eval()


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:300] if text else type(e).__name__
