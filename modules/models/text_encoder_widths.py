"""How wide each text encoder of a checkpoint is (768 for SD 1.x, 1024 for SD 2.x, 768 and 1280 for SDXL):
what decides which textual-inversion embeddings fit it. From a loaded pipeline, or without loading it: from
its diffusers configs, else from the token embeddings' shapes in a single file's header."""
from __future__ import annotations

import json
import threading
from pathlib import Path

from modules.errors import BadModelFile
from modules.models import pickles
from modules.models.families import Family
from modules.models.registry import CheckpointInfo
from modules.models.safetensors_header import read_header

_cache: dict[tuple, tuple[int, ...]] = {}
_lock = threading.Lock()


def pipeline_widths(pipe, family: Family) -> tuple[int, ...]:
    """The widths of a loaded pipeline's text encoders, in the family's encoder order."""
    widths = []
    for _, encoder_name in family.text.encoders:
        encoder = getattr(pipe, encoder_name, None)
        if encoder is not None:
            widths.append(int(encoder.get_input_embeddings().weight.shape[1]))
    return tuple(widths)


def checkpoint_widths(info: CheckpointInfo) -> tuple[int, ...]:
    """The widths of a checkpoint's text encoders without loading it (cached per file and mtime)."""
    family = info.architecture.spec
    try:
        stamp = (str(info.path), info.path.stat().st_mtime_ns)
    except OSError as e:
        raise BadModelFile(info.path, f"cannot read file: {e.strerror or e}") from None
    with _lock:
        if stamp in _cache:
            return _cache[stamp]
    folder = info.path if info.layout == "diffusers" else info.sidecar_config
    widths = _config_widths(folder, family) if folder is not None else None
    if widths is None:
        widths = _header_widths(info.path, family)
    with _lock:
        _cache[stamp] = widths
    return widths


def _config_widths(folder: Path, family: Family) -> tuple[int, ...] | None:
    widths = []
    for _, encoder_name in family.text.encoders:
        try:
            config = json.loads((folder / encoder_name / "config.json").read_text(encoding="utf8"))
            widths.append(int(config["hidden_size"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None
    return tuple(widths)


def _header_widths(path: Path, family: Family) -> tuple[int, ...]:
    if pickles.is_safetensors_file(path):
        shapes = {name: info["shape"] for name, info in read_header(path)[0].items()}
    else:
        shapes = {name: list(t.shape) for name, t in pickles.load_pickle_state_dict(path).items()}
    widths = []
    for key in family.text.header_token_embeddings:
        shape = shapes.get(key)
        if not shape or len(shape) != 2:
            raise BadModelFile(path, f"has no text encoder token embedding {key!r}")
        widths.append(int(shape[1]))
    return tuple(widths)
