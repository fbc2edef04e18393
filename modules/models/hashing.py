"""sha256 of model files, as A1111 shows them (first 10 hex = shorthash), computed once per file version.

The cache is keyed by path and invalidated by mtime+size, so a replaced file is hashed again."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path

import torch

from modules.models import folder_walk

log = logging.getLogger(__name__)

_CHUNK = 16 * 1024 * 1024
# Files that make up a diffusers folder's weights and configs, in a stable order.
_FOLDER_SUFFIXES = (".safetensors", ".bin", ".json", ".txt", ".model")


class HashCache:
    def __init__(self, cache_file: Path):
        self.cache_file = cache_file
        self._lock = threading.Lock()
        try:
            self._entries = json.loads(cache_file.read_text(encoding="utf8"))
        except (OSError, ValueError):
            self._entries = {}

    def sha256(self, path: Path) -> str:
        """Full sha256 of a file, or of a diffusers folder's files (names and contents)."""
        path = Path(path).resolve()
        stamp = _stamp(path)
        with self._lock:
            entry = self._entries.get(str(path))
            if entry and entry.get("stamp") == stamp:
                return entry["sha256"]
        log.info("hashing %s (first time only)", path.name)
        digest = _hash_folder(path) if path.is_dir() else _hash_file(path)
        with self._lock:
            self._entries[str(path)] = {"stamp": stamp, "sha256": digest}
            self._save()
        return digest

    def file_hash(self, path: Path, kind: str, compute) -> str:
        """`compute(path)` for a kind of hash other than the plain sha256 (a LoRA's is A1111's "addnet"
        hash), remembered per file version like sha256."""
        path = Path(path).resolve()
        stamp, key = _stamp(path), f"{kind}:{path}"
        with self._lock:
            entry = self._entries.get(key)
            if entry and entry.get("stamp") == stamp:
                return entry["sha256"]
        log.info("hashing %s (first time only)", path.name)
        digest = compute(path)
        with self._lock:
            self._entries[key] = {"stamp": stamp, "sha256": digest}
            self._save()
        return digest

    def remembered(self, key: str) -> str | None:
        """A derived value stored under `key` (e.g. a component's content hash)."""
        with self._lock:
            entry = self._entries.get(key)
            return entry.get("value") if isinstance(entry, dict) else None

    def remember(self, key: str, value: str) -> None:
        with self._lock:
            self._entries[key] = {"value": value}
            self._save()

    def _save(self) -> None:
        # Write to a temp file and rename, so a crash never leaves a half-written cache.
        try:
            self.cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.cache_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(self._entries, indent=1), encoding="utf8")
            os.replace(tmp, self.cache_file)
        except OSError as e:
            log.warning("could not save the hash cache %s: %s", self.cache_file, e)


def short_hash(sha256: str) -> str:
    return sha256[:10]


def tensors_sha256(named_tensors) -> str:
    """Content hash of a module's weights: names, dtypes, shapes and bytes."""
    h = hashlib.sha256()
    for name, tensor in named_tensors:
        t = tensor.detach().contiguous().cpu()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
    return h.hexdigest()


def _folder_files(folder: Path) -> list[Path]:
    return [p for p in folder_walk.files(folder) if p.suffix in _FOLDER_SUFFIXES]


def _stamp(path: Path) -> list:
    files = _folder_files(path) if path.is_dir() else [path]
    return [[str(f.relative_to(path)) if path.is_dir() else "", f.stat().st_mtime_ns, f.stat().st_size] for f in files]


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _hash_folder(folder: Path) -> str:
    h = hashlib.sha256()
    for f in _folder_files(folder):
        h.update(str(f.relative_to(folder)).encode())
        h.update(bytes.fromhex(_hash_file(f)))
    return h.hexdigest()
