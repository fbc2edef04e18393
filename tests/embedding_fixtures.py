"""Tiny textual-inversion files in every layout A1111 reads, with random vectors of any width: SD 1.x-style
(one tensor), SDXL (clip_l + clip_g), A1111's .pt, diffusers' .bin, and a hostile .pt whose unpickling would
run code (it writes a marker file: the test checks the marker never appears)."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch
from safetensors.torch import save_file


def vectors(count: int, width: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(count, width, generator=generator)


def a1111_pt(path: Path, tensor: torch.Tensor, step: int = 500, checkpoint: str = "tiny-sd15") -> Path:
    """A1111's own training output: string_to_param {'*': tensor} with its metadata."""
    torch.save({"string_to_token": {"*": 265}, "string_to_param": {"*": tensor}, "name": path.stem, "step": step,
                "sd_checkpoint": "abcdef12", "sd_checkpoint_name": checkpoint}, path)
    return path


def single_safetensors(path: Path, tensor: torch.Tensor, key: str = "emb_params") -> Path:
    """One tensor in a .safetensors file (A1111 saves `emb_params`)."""
    save_file({key: tensor.contiguous()}, str(path))
    return path


def diffusers_bin(path: Path, tensor: torch.Tensor, token: str = "<concept>") -> Path:
    """diffusers' learned_embeds.bin: {token: tensor} (one vector: a 1-D tensor)."""
    torch.save({token: tensor[0] if tensor.shape[0] == 1 else tensor}, path)
    return path


def sdxl_safetensors(path: Path, clip_l: torch.Tensor, clip_g: torch.Tensor) -> Path:
    save_file({"clip_l": clip_l.contiguous(), "clip_g": clip_g.contiguous()}, str(path))
    return path


class _WritesMarker:
    """Unpickling this calls os.system: a weights-only loader must refuse it without calling anything."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def malicious_pt(path: Path, marker: Path) -> Path:
    torch.save({"string_to_param": {"*": torch.zeros(1, 32)}, "payload": _WritesMarker(marker)}, path,
               pickle_module=pickle)
    return path
