"""Textual-inversion embedding files, read as weights only: `.safetensors`, or `.pt`/`.bin` through torch's
weights-only unpickler (a file that needs more than tensors, dicts, strings and numbers is refused, and
nothing in it runs). The layouts A1111 reads:

    {"string_to_param": {"*": tensor}, "step": ..., "sd_checkpoint": ..., "sd_checkpoint_name": ...}  A1111's own
    {"clip_l": tensor, "clip_g": tensor}                                                      SDXL (two encoders)
    {"emb_params": tensor} / {"<token>": tensor}                                               one tensor (diffusers)

Vectors come back as float32 CPU tensors `(vectors, width)` by encoder key: "" for a single tensor (SD 1.x
768 wide, SD 2.x 1024), "clip_l" and "clip_g" for SDXL. Parsed files are cached by path, size and mtime."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch

from modules.errors import BadModelFile
from modules.models import pickles

SINGLE = ""  # the encoder key of a one-tensor embedding
SDXL_KEYS = ("clip_l", "clip_g")
MAX_FILE_BYTES = 64 * 1024 * 1024  # 75 vectors of SDXL's 2048 floats are 600 kB; more is not an embedding
MAX_VECTORS = 75  # one prompt chunk: an embedding longer than that could never be placed
MAX_WIDTH = 8192


@dataclass(frozen=True)
class EmbeddingData:
    vectors: dict[str, torch.Tensor]  # encoder key -> (vectors, width) float32
    step: int | None = None
    sd_checkpoint: str | None = None
    sd_checkpoint_name: str | None = None

    @property
    def count(self) -> int:
        """Token slots the embedding takes in a prompt."""
        return next(iter(self.vectors.values())).shape[0]

    @property
    def shape(self) -> int:
        """A1111's "shape": the width, both encoders' together for SDXL (768 + 1280 = 2048)."""
        return sum(v.shape[-1] for v in self.vectors.values())


def read_embedding(path: Path) -> EmbeddingData:
    """The embedding in `path`; BadModelFile naming the file when it is none, or needs more than weights."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise BadModelFile(path, f"cannot read file: {e.strerror or e}") from None
    if size > MAX_FILE_BYTES:
        raise BadModelFile(path, f"is {size // 2**20} MB: too large for a textual-inversion embedding")
    if pickles.is_safetensors_file(path):
        data = _read_safetensors(path)
    elif path.suffix.lower() == ".safetensors":
        raise BadModelFile(path, "refused: not a .safetensors file (a renamed pickle may run code)")
    else:
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - every unpickling failure is a refusal
            raise BadModelFile(path, "refused: this embedding holds more than plain tensors (it may run code); "
                                     f"convert it to .safetensors from a trusted source ({type(e).__name__})") from None
    return _parse(path, data)


def _read_safetensors(path: Path) -> dict:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as e:  # noqa: BLE001 - a corrupt file is the file's fault
        raise BadModelFile(path, f"cannot be read as .safetensors: {e}") from None


def _parse(path: Path, data) -> EmbeddingData:
    if not isinstance(data, dict) or not data:
        raise BadModelFile(path, "is not a textual-inversion embedding (no tensors in it)")
    if "string_to_param" in data:  # A1111's own files
        params = data["string_to_param"]
        if not isinstance(params, dict) or len(params) != 1:
            raise BadModelFile(path, "string_to_param must hold exactly one term")
        vectors = {SINGLE: next(iter(params.values()))}
    elif all(key in data for key in SDXL_KEYS):  # SDXL: one tensor per text encoder
        vectors = {key: data[key] for key in SDXL_KEYS}
    else:
        tensors = [value for value in data.values() if isinstance(value, torch.Tensor)]
        if len(tensors) != 1:
            raise BadModelFile(path, f"holds {len(tensors)} tensors and none of A1111's layouts "
                                     "(string_to_param, clip_l/clip_g, or a single tensor)")
        vectors = {SINGLE: tensors[0]}
    checked = {key: _checked(path, key, value) for key, value in vectors.items()}
    counts = {v.shape[0] for v in checked.values()}
    if len(counts) != 1:
        raise BadModelFile(path, "clip_l and clip_g have different numbers of vectors")
    return EmbeddingData(checked, _int_or_none(data.get("step")), _str_or_none(data.get("sd_checkpoint")),
                         _str_or_none(data.get("sd_checkpoint_name")))


def _checked(path: Path, key: str, value) -> torch.Tensor:
    what = key or "the embedding"
    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        raise BadModelFile(path, f"{what} is not a tensor of numbers")
    if value.ndim == 1:
        value = value.unsqueeze(0)
    if value.ndim != 2 or not 1 <= value.shape[0] <= MAX_VECTORS or not 1 <= value.shape[1] <= MAX_WIDTH:
        raise BadModelFile(path, f"{what} has shape {list(value.shape)}: expected (vectors, width) with 1 to "
                                 f"{MAX_VECTORS} vectors")
    value = value.detach().to(dtype=torch.float32, device="cpu").contiguous()
    if not torch.isfinite(value).all():
        raise BadModelFile(path, f"{what} holds NaN or infinite values")
    return value


def _int_or_none(value) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _str_or_none(value) -> str | None:
    return value if isinstance(value, str) else None


@dataclass
class EmbeddingReader:
    """read_embedding with a cache: a file is parsed again only when its size or mtime changed. An unreadable
    file's refusal is cached the same way, so a listing does not retry it on every call."""

    _cache: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def read(self, path: Path, stamp: tuple | None = None) -> EmbeddingData:
        """`stamp`: the file's (size, mtime) as a folder listing just saw it, saving a stat per file."""
        path = Path(path)
        if stamp is None:
            try:
                st = path.stat()
                stamp = (st.st_size, st.st_mtime)
            except OSError as e:
                raise BadModelFile(path, f"cannot read file: {e.strerror or e}") from None
        with self._lock:
            cached = self._cache.get(path)
        if cached is not None and cached[0] == stamp:
            if isinstance(cached[1], BadModelFile):
                raise cached[1]
            return cached[1]
        try:
            value = read_embedding(path)
        except BadModelFile as e:
            value = e
        with self._lock:
            self._cache[path] = (stamp, value)
        if isinstance(value, BadModelFile):
            raise value
        return value

    def forget_except(self, paths: set[Path]) -> None:
        """Drop the cached files that are no longer listed (removed or renamed)."""
        with self._lock:
            for path in [p for p in self._cache if p not in paths]:
                del self._cache[path]
