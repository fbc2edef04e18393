"""Rewriting a zoo model file's zoo_info after evaluation (bench/zoo_eval.py --write-factors): tooling."""
from __future__ import annotations

import json
from pathlib import Path

from modules.atomic_files import replacing
from modules.zoo.model_files import read_info, read_metadata


def update_info(path: str | Path, info: dict) -> None:
    """Rewrite the file with ``info`` merged into its zoo_info (used after evaluation)."""
    from safetensors.torch import load_file, save_file
    metadata = read_metadata(path)
    merged = read_info(path, metadata) | info
    metadata["zoo_info"] = json.dumps(merged)
    tensors = load_file(str(path))
    with replacing(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
