"""Which models the Latent Explorer offers and how it gets them, all through the backend's owners of
weights: β-VAEs of models/Latent via the manager's zoo cache, a checkpoint's VAE via ``manager.use``
(holding the device), a file of models/VAE via ``manager.use(ModelRef(VAE_FILE, ...))``, also holding the device."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from modules.errors import BadModelFile, ModelNotFound
from modules.generation.latent import LatentModel, latent_model
from modules.models.refs import VAE_FILE, ModelRef
from modules.models.vae_files import VaeFiles

CHECKPOINT_PREFIX = "checkpoint: "
FILE_PREFIX = "file: "
BUILT_IN = "shapes-beta-vae.safetensors"


class LatentModels:
    def __init__(self, backend):
        self.backend = backend
        self.vae_files = VaeFiles(backend.vae_folders)

    # ---------------------------------------------------------------- β-VAEs (models/Latent)

    def beta_vae_titles(self) -> list[str]:
        return [m.title for m in self.backend.zoo_registry.usable("beta_vae")]

    def default_title(self) -> str | None:
        """The built-in β-VAE where it is present, else the first one."""
        titles = self.beta_vae_titles()
        built_in = [t for t in titles if t.startswith(BUILT_IN + " ") or t == BUILT_IN]
        return (built_in or titles or [None])[0]

    def refresh(self) -> list[str]:
        self.backend.zoo_registry.scan()
        return self.beta_vae_titles()

    def beta_vae(self, name: str | None) -> LatentModel:
        """By title, name, name without extension or hash; None: the first one. Loaded once."""
        registry = self.backend.zoo_registry
        try:
            info = registry.find("beta_vae", name)
        except ModelNotFound:
            registry.scan()  # a file copied in since the last scan
            info = registry.find("beta_vae", name)
        return latent_model(info, self.backend.manager.zoo_model(info))

    def find_by_hash(self, sha256: str) -> str | None:
        """The title of the β-VAE with this file hash, if it is here."""
        for m in self.backend.zoo_registry.usable("beta_vae"):
            if sha256 and m.sha256 == sha256:
                return m.title
        return None

    # ---------------------------------------------------------------- SD VAEs

    def sd_vae_choices(self) -> list[str]:
        checkpoints = [CHECKPOINT_PREFIX + title for title in self.backend.checkpoint_titles()]
        return checkpoints + [FILE_PREFIX + f.name for f in self.vae_files.scan()]

    @contextmanager
    def sd_vae(self, source: str) -> Iterator[object]:
        """The AutoencoderKL named by ``source``, with the device held for the duration."""
        manager = self.backend.manager
        if source.startswith(FILE_PREFIX):
            vae_file = self.vae_files.find(source[len(FILE_PREFIX):].strip())
            with manager.use(ModelRef(VAE_FILE, str(vae_file.path))) as loaded:
                yield loaded.module
            return
        title = source[len(CHECKPOINT_PREFIX):].strip() if source.startswith(CHECKPOINT_PREFIX) else source
        try:
            self.backend.registry.find(title)
        except ModelNotFound:
            try:
                vae_file = self.vae_files.find(title)
            except ModelNotFound:
                raise ModelNotFound("VAE", source) from None
            with manager.use(ModelRef(VAE_FILE, str(vae_file.path))) as loaded:
                yield loaded.module
            return
        with manager.use(title) as model:
            vae = getattr(model.pipe, "vae", None)
            if vae is None:
                raise BadModelFile(model.info.path, "this checkpoint has no VAE")
            yield vae
