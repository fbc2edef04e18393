"""FP8 weight storage: a denoiser's weights kept in fp8 (1 byte each) and cast layer by layer to the compute
dtype (--precision: bf16, fp16, fp32) as each layer runs (diffusers' layerwise casting). Half the memory of
bf16 for the transformer, which is most of FLUX's 12B weights, at a small cost in accuracy.

Two ways in, as users know them (and fp8 text encoder files, t5xxl_fp8_e4m3fn, kept in fp8 the same way):
- an fp8 file (flux1-dev-fp8.safetensors, sd3.5_large_fp8_scaled.safetensors): its denoiser is read as fp8 and
  stays fp8, whatever the option says (registry.CheckpointInfo.stored_as);
- A1111's "FP8 weight" option (`fp8_storage`: Disable, Enable for SDXL, Enable) for a bf16/fp16 file: its
  denoiser is cast to fp8 once, at load.
Norms and positional embeddings stay in the compute dtype (diffusers' `_skip_layerwise_casting_patterns`)."""
from __future__ import annotations

import torch

from modules import compat
from modules.models.skeletons import KEY_ATTRIBUTE

OPTION = "fp8_storage"  # A1111's key
CHOICES = ("Disable", "Enable for SDXL", "Enable")
SDXL_FAMILIES = ("sdxl", "sdxl_refiner")
FILE_DTYPES = {"float8_e4m3fn": torch.float8_e4m3fn, "float8_e5m2": torch.float8_e5m2}


def storage_dtype(info, setting: object) -> torch.dtype | None:
    """The fp8 dtype `info`'s denoiser is kept in, or None (plain; a GGUF file keeps its own quantisation)."""
    stored = getattr(info, "stored_as", None)
    if stored in FILE_DTYPES:
        return FILE_DTYPES[stored]
    if stored is not None or info.architecture is None:
        return None
    if setting == "Enable" or (setting == "Enable for SDXL" and info.architecture.family in SDXL_FAMILIES):
        return torch.float8_e4m3fn
    return None


def file_storage(path) -> torch.dtype | None:
    """The fp8 dtype most of a .safetensors component file's bytes are in (ComfyUI's t5xxl_fp8_e4m3fn), else None:
    such a text encoder is read as fp8 and kept so, computed in the compute dtype like an fp8 denoiser."""
    from pathlib import Path

    from modules.models.safetensors_header import read_header

    if Path(path).suffix.lower() != ".safetensors":
        return None
    totals: dict[str, int] = {}
    for info in read_header(path)[0].values():
        totals[info["dtype"]] = totals.get(info["dtype"], 0) + info["data_offsets"][1] - info["data_offsets"][0]
    main = max(totals, key=totals.get, default=None)
    return FILE_DTYPES.get({"F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2"}.get(main, ""))


def store_text_encoder(module: torch.nn.Module, storage: torch.dtype, compute_dtype: torch.dtype) -> None:
    """A text encoder read from an fp8 file kept in fp8, as `store` keeps a denoiser. The layers transformers keeps
    out of low precision (`_keep_in_fp32_modules`: T5's feed-forward output `wo`, whose input T5 casts to that
    layer's own weight dtype) get the compute dtype instead."""
    kept = tuple(getattr(module, "_keep_in_fp32_modules", None) or ())
    with torch.no_grad():
        for name, layer in module.named_modules():
            if kept and name.split(".")[-1] in kept:
                for param in layer.parameters():
                    param.data = param.data.to(compute_dtype)
    store(module, storage, compute_dtype)


def store(module: torch.nn.Module, storage: torch.dtype, compute_dtype: torch.dtype) -> None:
    """Keep `module`'s weights in `storage`, computing in `compute_dtype`.

    Each weight then gets its own storage: a layer's weights are re-made at each forward (cast up, then
    down again), so a view into the load's one read buffer would keep that whole buffer alive beside them."""
    compat.store_layerwise(module, storage, compute_dtype)
    if hasattr(module, KEY_ATTRIBUTE):  # hooked now: never a skeleton for a plain load of its architecture
        delattr(module, KEY_ATTRIBUTE)
    with torch.no_grad():
        for t in [*module.parameters(), *module.buffers()]:
            if t.device.type != "meta" and t.untyped_storage().nbytes() != t.nbytes:
                t.data = t.data.clone()
