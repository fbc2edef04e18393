"""The list of checkpoints a user can pick: scanned from folders, detected, hashed, titled as in A1111.

A scan never raises: a file that cannot be used is listed with the reason."""
from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from modules.errors import BadModelFile, ModelNotFound
from modules.models import config_classes, detect, families, folder_walk, gguf_header, hashing, pickles
from modules.models.gguf_files import is_gguf
from modules.models.listed_file import ListedFile
from modules.models.safetensors_header import read_header

log = logging.getLogger(__name__)

SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".gguf")
SIDECAR_SUFFIX = ".config"  # "<stem>.config/" beside a single file: a diffusers config folder to load it offline


@dataclass
class CheckpointInfo(ListedFile):
    path: Path
    name: str  # path relative to its models folder, as A1111 shows it ("sub/model.safetensors")
    layout: str  # "single_file" or "diffusers"
    architecture: detect.Architecture | None = None
    sha256: str | None = None
    error: str | None = None  # why it cannot be used
    sidecar_config: Path | None = None
    # The separate files a job pairs with a transformer-only file: {component: (file, prefix)} (component_files.py)
    component_files: dict | None = None
    # How the file stores its denoiser's weights, when not as plain floats: "float8_e4m3fn" (an fp8 file: kept
    # in fp8, computed in the compute dtype), "GGUF Q8_0" ... (a GGUF file: kept quantised). None: plain.
    stored_as: str | None = None

    @property
    def model_name(self) -> str:
        """The infotext "Model:" value: the name without extension."""
        return Path(self.name).with_suffix("").as_posix() if self.layout == "single_file" else self.name

    @property
    def native_size(self) -> int:
        """The image side the model was trained at: what txt2img should default to for it."""
        if self.layout == "diffusers" or self.sidecar_config is not None:
            folder = self.path if self.layout == "diffusers" else self.sidecar_config
            try:
                # The denoiser's sample size is in latent pixels; each VAE level halves the image.
                denoiser = json.loads((folder / self._family.denoiser / "config.json").read_text(encoding="utf8"))
                vae = json.loads((folder / self._family.vae / "config.json").read_text(encoding="utf8"))
                sample_size = denoiser["sample_size"]
                side = (sample_size[0] if isinstance(sample_size, list) else sample_size)
                return int(side) * 2 ** (len(vae["block_out_channels"]) - 1)
            except (OSError, ValueError, KeyError, TypeError):
                pass
        return self._family.native_size

    @property
    def text_encoder_layers(self) -> int:
        """How many layers the shallowest text encoder has: the highest clip skip this checkpoint can use."""
        folder = self.path if self.layout == "diffusers" else self.sidecar_config
        if folder is not None:
            counts = []
            for _, name in self._family.text.encoders:
                try:
                    config = json.loads((folder / name / "config.json").read_text(encoding="utf8"))
                    counts.append(int(config["num_hidden_layers"]))
                except (OSError, ValueError, KeyError, TypeError):
                    continue
            if counts and min(counts) > 0:
                return min(counts)
        return self._family.text.layers_without_config

    @property
    def _family(self) -> families.Family:
        # An unusable file has no architecture; SD 1.x's defaults are as good as any for it.
        return self.architecture.spec if self.architecture else families.by_name("sd1")


@dataclass
class Registry:
    checkpoint_dirs: list[Path]
    hash_cache: hashing.HashCache
    checkpoints: list[CheckpointInfo] = field(default_factory=list)
    extra_paths: list[Path] = field(default_factory=list)  # single checkpoints given by path (--ckpt)

    def __post_init__(self):
        self._lock = threading.Lock()

    def scan(self) -> list[CheckpointInfo]:
        found: list[CheckpointInfo] = []
        seen: set[Path] = set()
        for root in self.checkpoint_dirs:
            if not root.is_dir():
                continue
            for info in _scan_folder(root):
                real = folder_walk.real_path(info.path)
                if real in seen:
                    continue
                seen.add(real)
                self._inspect(info)
                found.append(info)
        for path in self.extra_paths:
            if folder_walk.real_path(path) not in seen and path.exists():
                seen.add(folder_walk.real_path(path))
                layout = "diffusers" if path.is_dir() else "single_file"
                info = CheckpointInfo(path=path, name=path.name, layout=layout)
                self._inspect(info)
                found.append(info)
        found.sort(key=lambda c: c.name.lower())
        with self._lock:
            self.checkpoints = found
        return found

    def usable(self) -> list[CheckpointInfo]:
        return [c for c in self.checkpoints if c.usable]

    def unusable(self) -> list[CheckpointInfo]:
        return [c for c in self.checkpoints if not c.usable]

    def find(self, wanted: str) -> CheckpointInfo:
        """Look a checkpoint up as users name it: title, name, name without extension, hash, or path."""
        wanted = wanted.strip()
        for match in (
            lambda c: c.title == wanted,
            lambda c: c.name == wanted or c.model_name == wanted,
            lambda c: c.sha256 and (wanted.lower() in (c.shorthash, c.sha256, c.sha256[:8])),
            lambda c: wanted.endswith("]") and wanted.rsplit(" [", 1)[0] in (c.name, c.model_name),
            lambda c: str(c.path) == wanted or folder_walk.real_path(c.path) == folder_walk.real_path(Path(wanted)),
            lambda c: Path(c.name).name == wanted or Path(c.model_name).name == wanted,
        ):
            for c in self.checkpoints:
                if match(c):
                    if not c.usable:
                        raise BadModelFile(c.path, c.error)
                    return c
        raise ModelNotFound("checkpoint", wanted)

    def _inspect(self, info: CheckpointInfo) -> None:
        try:
            if info.layout == "diffusers":
                config_classes.check_model_index(info.path, info.path)  # names no code, before anything else
                info.architecture = detect.detect_diffusers_folder(info.path)
            else:
                if is_gguf(info.path):
                    header = gguf_header.read_header(info.path)
                    info.architecture = detect.detect_gguf(info.path, header.shapes())
                    info.stored_as = "GGUF " + header.main_type()
                else:
                    info.architecture = detect.detect_from_keys(info.path, _tensor_shapes(info.path))
                    info.stored_as = _stored_as(info.path, info.architecture)
                sidecar = info.path.with_name(info.path.stem + SIDECAR_SUFFIX)
                info.sidecar_config = sidecar if (sidecar / "model_index.json").is_file() else None
                if info.sidecar_config is not None:
                    config_classes.check_model_index(sidecar, info.path)
            info.sha256 = self.hash_cache.sha256(info.path)
        except BadModelFile as e:
            info.error = e.reason
        except Exception as e:  # noqa: BLE001 - a scan must survive any file
            log.exception("unexpected error while scanning %s", info.path)
            info.error = f"cannot be read: {type(e).__name__}: {e}"


def _tensor_shapes(path: Path) -> dict[str, list[int]]:
    if path.suffix.lower() == ".safetensors":
        if pickles.is_pickle_file(path):
            raise BadModelFile(path, "refused: this is a pickle renamed to .safetensors (it may run code)")
        header, _ = read_header(path)
        return {k: v["shape"] for k, v in header.items()}
    state_dict = pickles.load_pickle_state_dict(path)
    return {k: list(v.shape) for k, v in state_dict.items()}


def _stored_as(path: Path, architecture: detect.Architecture) -> str | None:
    """"float8_e4m3fn" / "float8_e5m2" when most of a .safetensors file's denoiser bytes are fp8 (flux1-dev-fp8,
    sd3.5_large_fp8_scaled): such files are loaded and kept in fp8."""
    if path.suffix.lower() != ".safetensors":
        return None
    header, _ = read_header(path)
    scaled = next((name for name in header if name == "scaled_fp8" or name.endswith((".scale_weight", ".scale_input"))),
                  None)
    if scaled is not None:  # read without its scales, each weight would be off by its own factor
        raise BadModelFile(path, f"is a scaled fp8 file ({scaled}: ComfyUI's fp8_scaled format), which is not "
                                 "supported: use a plain fp8, bf16 or GGUF file")
    others = detect.component_prefixes(architecture.spec)
    totals: dict[str, int] = {}
    for name, info in header.items():
        if not name.startswith(others):
            size = info["data_offsets"][1] - info["data_offsets"][0]
            totals[info["dtype"]] = totals.get(info["dtype"], 0) + size
    fp8 = {"F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2"}
    main = max(totals, key=totals.get, default=None)
    return fp8.get(main)


def _scan_folder(root: Path):
    """Yield checkpoints under root: single files, and diffusers folders (which are not descended into).
    Symlink loops and very deep or very large trees end the walk (folder_walk) instead of hanging it."""
    def skipped(folder: Path) -> bool:  # sidecar configs and hidden folders
        return folder.name.endswith(SIDECAR_SUFFIX) or folder.name.startswith(".")

    def is_model(folder: Path) -> bool:
        return (folder / "model_index.json").is_file()

    for entry, is_folder in folder_walk.walk(root, descend=lambda f: not skipped(f) and not is_model(f)):
        name = entry.relative_to(root).as_posix()
        if is_folder:
            if not skipped(entry) and is_model(entry):
                yield CheckpointInfo(path=entry, name=name, layout="diffusers")
        elif entry.suffix.lower() in SINGLE_FILE_SUFFIXES:
            yield CheckpointInfo(path=entry, name=name, layout="single_file")
