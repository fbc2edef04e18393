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
    """Judge by content, not name: a pickle renamed to .safetensors is still a pickle."""
    try:
        with open(path, "rb") as f:
            head = f.read(10)
    except OSError:
        return False
    # Pickles start with PROTO (0x80); zip-based torch files with "PK".
    return not (head[:1] == b"\x80" or head[:2] == b"PK")
