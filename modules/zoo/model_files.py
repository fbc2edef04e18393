"""Self-describing zoo weight files: one .safetensors with the architecture config in its metadata.

Metadata keys (all strings, as safetensors requires):
    zoo_kind     "beta_vae" or "gan"
    zoo_config   JSON object: the architecture config (dataclass fields of the model's config)
    zoo_info     JSON object, optional: facts found after training (e.g. factor names per latent dim)

``parse_config`` checks the metadata; modules/models/zoo_loader.py (the model manager's) reads the
tensors and checks they are exactly those the config's architecture has (names and shapes); any
mismatch is a BadModelFile naming the file and the problem.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from modules.atomic_files import replacing
from modules.errors import BadModelFile

FORMAT_VERSION = "1"


def save_model_file(path: str | Path, model: torch.nn.Module, kind: str, config, info: dict | None = None) -> None:
    from safetensors.torch import save_file
    metadata = {"zoo_kind": kind, "zoo_config": json.dumps(dataclasses.asdict(config)),
                "zoo_format_version": FORMAT_VERSION}
    if info:
        metadata["zoo_info"] = json.dumps(info)
    tensors = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    with replacing(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def read_metadata(path: str | Path) -> dict[str, str]:
    """The file's metadata, from its header alone (bounded and checked: modules/models/safetensors_header)."""
    from modules.models.safetensors_header import read_header

    path = Path(path)
    if not path.is_file():
        raise BadModelFile(path, "file not found")
    return dict(read_header(path)[1] or {})


def parse_config(path: str | Path, config_class, kind: str, metadata: dict[str, str]):
    """The config dataclass from the metadata, or BadModelFile saying what is wrong."""
    found = metadata.get("zoo_kind")
    if found is None or "zoo_config" not in metadata:
        raise BadModelFile(path, f"no zoo_kind/zoo_config metadata: this is not a built-in zoo {kind} file")
    if found != kind:
        raise BadModelFile(path, f"this is a {found!r} file, not a {kind!r} file")
    try:
        raw = json.loads(metadata["zoo_config"])
    except json.JSONDecodeError as error:
        raise BadModelFile(path, f"zoo_config is not valid JSON ({error})") from None
    if not isinstance(raw, dict):
        raise BadModelFile(path, "zoo_config must be a JSON object")
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    unknown = sorted(set(raw) - set(fields))
    missing = sorted(name for name, f in fields.items() if name not in raw
                     and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
    if unknown:
        raise BadModelFile(path, f"unknown config keys {unknown}")
    if missing:
        raise BadModelFile(path, f"config is missing keys {missing}")
    for name, value in raw.items():
        default = fields[name].default
        if isinstance(default, tuple) and isinstance(value, list):
            raw[name] = value = tuple(value)
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool) if isinstance(default, float)
              else isinstance(value, type(default)) and not (isinstance(value, bool) and not isinstance(default, bool)))
        if default is not dataclasses.MISSING and not ok:
            raise BadModelFile(path, f"config key {name!r} should be {type(default).__name__}, not {type(value).__name__}")
    try:
        config = config_class(**raw)
    except (TypeError, ValueError) as error:
        raise BadModelFile(path, f"invalid config: {error}") from None
    return config


def read_info(path: str | Path, metadata: dict[str, str]) -> dict:
    if "zoo_info" not in metadata:
        return {}
    try:
        info = json.loads(metadata["zoo_info"])
    except json.JSONDecodeError:
        raise BadModelFile(path, "zoo_info is not valid JSON") from None
    return info if isinstance(info, dict) else {}
