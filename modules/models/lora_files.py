"""LoRA files as weights: their tensors (read here and nowhere else), their A1111 hash, their metadata.

A .safetensors file is read after its header is checked; a .pt/.ckpt only with torch's weights-only loader.
Nothing a file names is imported or run. The hash is A1111's: for .safetensors the sha256 of the tensor
bytes after the header ("addnet" hash, what kohya writes as `sshs_model_hash` and civitai shows as AutoV3),
for other files the sha256 of the whole file; infotext shows its first 12 hex digits."""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from modules.errors import BadModelFile
from modules.models.pickles import is_safetensors_file, load_pickle_state_dict
from modules.models.safetensors_header import read_header

MAX_LORA_BYTES = 8 * 1024**3  # the largest full-rank SDXL LoRAs are about 2 GB
MAX_LORA_TENSORS = 20_000  # an SDXL LoRA of every linear and conv layer has about 8000
SHORT_HASH_DIGITS = 12  # A1111's network shorthash
_CHUNK = 16 * 1024 * 1024
# Key parts of LyCORIS networks diffusers cannot load (LoHa, LoKr, OFT, IA3, full diff, GLoRA).
_LYCORIS = ("hada_w1", "lokr_w1", "oft_blocks", "oft_diag", ".on_input", ".diff", "a1.weight", "b1.weight")
# DoRA's magnitude vectors: diffusers drops them with a warning, which would change the picture unsaid.
_DORA = "dora_scale"


def read_lora(path: Path) -> dict[str, torch.Tensor]:
    """The file's tensors, on the CPU; a BadModelFile naming it when it is not a LoRA we can load."""
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_LORA_BYTES:
        raise BadModelFile(path, f"is {size / 1024**3:.1f} GB, over the {MAX_LORA_BYTES // 1024**3} GB limit "
                                 "for a LoRA")
    if is_safetensors_file(path):
        header, _ = read_header(path)
        _check_count(path, len(header))
        from safetensors.torch import load_file

        state = load_file(str(path), device="cpu")
    else:
        state = load_pickle_state_dict(path)
        _check_count(path, len(state))
        state = {k: v.clone() for k, v in state.items()}  # off the memory map: the file may change later
    if not state:
        raise BadModelFile(path, "holds no tensors")
    for key in state:
        if any(part in key for part in _LYCORIS):
            raise BadModelFile(path, f"is a LyCORIS network ({key}): only LoRA (LoCon) layers are supported")
        if _DORA in key:
            raise BadModelFile(path, f"is a DoRA ({key}): only plain LoRA layers are supported")
    return state


def lora_sha256(path: Path) -> str:
    """A1111's hash of a LoRA file (see the module's docstring)."""
    path = Path(path)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        if is_safetensors_file(path):
            header_size = int.from_bytes(f.read(8), "little")
            f.seek(8 + header_size)
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def lora_metadata(path: Path) -> dict[str, str]:
    """The `__metadata__` of a .safetensors LoRA (kohya's ss_* training notes), else {}."""
    path = Path(path)
    if not is_safetensors_file(path):
        return {}
    return read_header(path)[1]


def _check_count(path: Path, count: int) -> None:
    if count > MAX_LORA_TENSORS:
        raise BadModelFile(path, f"holds {count} tensors, over the limit of {MAX_LORA_TENSORS} for a LoRA")
