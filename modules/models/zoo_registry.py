"""The small self-describing models of models/Latent (β-VAEs) and models/GAN (GANs).

Each file is one .safetensors with its architecture in the metadata (`zoo_kind`, `zoo_config`);
the kind is read from the header alone, so a scan reads no tensors."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from modules.errors import BadModelFile, ModelNotFound
from modules.models import folder_walk
from modules.models.hashing import HashCache
from modules.models.listed_file import ListedFile
from modules.models.pickles import is_safetensors_file
from modules.models.safetensors_header import read_header
from modules.models.stylegan_pickle import check_network_pickle

PICKLE_SUFFIXES = (".pkl", ".pickle")  # NVIDIA's StyleGAN2-ADA / StyleGAN3 network pickles (models/GAN only)

log = logging.getLogger(__name__)

FOLDERS = {"beta_vae": "Latent", "gan": "GAN"}


@dataclass
class ZooModelInfo(ListedFile):
    path: Path
    name: str
    kind: str  # "beta_vae" or "gan"
    sha256: str | None = None
    error: str | None = None

    @property
    def model_name(self) -> str:
        return Path(self.name).with_suffix("").as_posix()


@dataclass
class ZooRegistry:
    models_dir: Path
    hash_cache: HashCache
    models: list[ZooModelInfo] = field(default_factory=list)

    def scan(self) -> list[ZooModelInfo]:
        found = []
        for kind, folder in FOLDERS.items():
            root = self.models_dir / folder
            if not root.is_dir():
                continue
            suffixes = (".safetensors",) + (PICKLE_SUFFIXES if kind == "gan" else ())
            for path in folder_walk.files(root, suffixes):  # no symlink loops, bounded
                info = ZooModelInfo(path, path.relative_to(root).as_posix(), kind)
                try:
                    if path.suffix.lower() in PICKLE_SUFFIXES and not is_safetensors_file(path):
                        check_network_pickle(path)  # its globals only: nothing is unpickled at a scan
                        info.sha256 = self.hash_cache.sha256(path)
                        found.append(info)
                        continue
                    _, metadata = read_header(path)
                    found_kind = metadata.get("zoo_kind")
                    if found_kind != kind:
                        raise BadModelFile(path, f"not a {kind} file for models/{folder} "
                                                 f"(zoo_kind is {found_kind!r})")
                    info.sha256 = self.hash_cache.sha256(path)
                except BadModelFile as e:
                    info.error = e.reason
                except OSError as e:
                    info.error = f"cannot be read: {e}"
                found.append(info)
        self.models = found
        return found

    def usable(self, kind: str) -> list[ZooModelInfo]:
        return [m for m in self.models if m.kind == kind and m.usable]

    def find(self, kind: str, wanted: str | None) -> ZooModelInfo:
        """By title, name, name without extension or hash; None or "" picks the first usable one."""
        candidates = [m for m in self.models if m.kind == kind]
        if not wanted:
            usable = [m for m in candidates if m.usable]
            if not usable:
                raise ModelNotFound(kind.replace("_", "-") + " model", f"(none in models/{FOLDERS[kind]})")
            return usable[0]
        wanted = wanted.strip()
        for m in candidates:
            if wanted in (m.title, m.name, m.model_name, m.shorthash, m.sha256, str(m.path)):
                if not m.usable:
                    raise BadModelFile(m.path, m.error)
                return m
        raise ModelNotFound(kind.replace("_", "-") + " model", wanted)
