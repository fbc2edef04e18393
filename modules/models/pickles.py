"""Legacy .ckpt/.pt checkpoints are Python pickles, which can run code when loaded.
We only ever unpickle them with torch's weights-only loader, which refuses anything but tensors."""
from __future__ import annotations

from pathlib import Path

import torch

from modules.errors import BadModelFile


def load_pickle_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    try:
        # mmap: tensor bytes stay on disk until used, so a scan reads only the pickle's structure.
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # noqa: BLE001 - every unpickling failure is a refusal
        raise BadModelFile(path, "refused: this pickle checkpoint holds more than plain tensors (it may run code); "
                                 f"convert it to .safetensors from a trusted source ({type(e).__name__})") from None
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict):
        raise BadModelFile(path, "pickle does not contain a state dict")
    return {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}


def is_safetensors_file(path: Path) -> bool:
    """Judge by content, not name: a pickle renamed to .safetensors is still a pickle.

    A safetensors file is an 8-byte little-endian header length, then the JSON header, which starts
    with `{`. The length bytes can be anything (a length whose low byte is 0x80 starts like a pickle's
    PROTO opcode), so only the byte after them decides; a pickle never has `{` there in practice."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError:
        return False
    return len(head) == 9 and head[8:9] == b"{"


def is_pickle_file(path: Path) -> bool:
    """A Python pickle (starts with PROTO, 0x80) or a zip-based torch file ("PK"), and not a safetensors file."""
    try:
        with open(path, "rb") as f:
            head = f.read(2)
    except OSError:
        return False
    return (head[:1] == b"\x80" or head == b"PK") and not is_safetensors_file(path)
