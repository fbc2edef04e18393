"""Which models the Latent Explorer offers, and what to ask the manager for: a β-VAE of models/Latent
(``ModelRef(BETA_VAE, name)``), a checkpoint's VAE (``ModelRef(CHECKPOINT, title)``, its ``.pipe.vae``)
or a VAE file of models/VAE and --vae-dir (``ModelRef(VAE_FILE, name)``). Nothing here loads weights."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from modules.capabilities.latent.beta_vae import LatentModel, latent_model
from modules.errors import BadModelFile, ModelNotFound
from modules.models.refs import BETA_VAE, CHECKPOINT, VAE_FILE, ModelRef

CHECKPOINT_PREFIX = "checkpoint: "
FILE_PREFIX = "file: "
BUILT_IN = "shapes-beta-vae.safetensors"


# ---------------------------------------------------------------- β-VAEs (models/Latent)

def beta_vae_titles(backend) -> list[str]:
    return [m.title for m in backend.zoo_registry.usable("beta_vae")]


def default_title(backend) -> str | None:
    """The built-in β-VAE where it is present, else the first one."""
    titles = beta_vae_titles(backend)
    built_in = [t for t in titles if t.startswith(BUILT_IN + " ") or t == BUILT_IN]
    return (built_in or titles or [None])[0]


def refreshed_titles(backend) -> list[str]:
    backend.zoo_registry.scan()
    return beta_vae_titles(backend)


def title_with_hash(backend, sha256: str) -> str | None:
    """The title of the β-VAE here with this file hash, if there is one."""
    for m in backend.zoo_registry.usable("beta_vae"):
        if sha256 and m.sha256 == sha256:
            return m.title
    return None


def beta_vae_ref(name: str | None) -> ModelRef:
    return ModelRef(BETA_VAE, name or None)


def as_latent_model(loaded) -> LatentModel:
    """What the explorer works on, from the manager's LoadedModule of a β-VAE."""
    return latent_model(loaded.info, loaded.module)


@contextmanager
def using_beta_vae(manager, name: str | None) -> Iterator[LatentModel]:
    """A β-VAE by title, name or hash (None: the first), under its own lock for the duration."""
    with manager.use(beta_vae_ref(name)) as loaded:
        yield as_latent_model(loaded)


# ---------------------------------------------------------------- SD VAEs

def sd_vae_choices(backend) -> list[str]:
    checkpoints = [CHECKPOINT_PREFIX + title for title in backend.checkpoint_titles()]
    return checkpoints + [FILE_PREFIX + f.name for f in backend.manager.vae_files.scan()]


def resolved_sd_vae(backend, source: str) -> str:
    """A source with its prefix: "checkpoint: <title>" or "file: <name>"; a bare name is looked up among
    the checkpoints, then the VAE files. Raises ModelNotFound naming what was asked for."""
    source = source.strip()
    if source.startswith((CHECKPOINT_PREFIX, FILE_PREFIX)):
        return source
    try:
        return CHECKPOINT_PREFIX + backend.registry.find(source).title
    except ModelNotFound:
        pass
    try:
        return FILE_PREFIX + backend.manager.vae_files.find(source).name
    except ModelNotFound:
        raise ModelNotFound("VAE", source) from None


def sd_vae_ref(source: str) -> ModelRef:
    """The manager's reference for a resolved source (see ``resolved_sd_vae``)."""
    if source.startswith(FILE_PREFIX):
        return ModelRef(VAE_FILE, source[len(FILE_PREFIX):].strip())
    return ModelRef(CHECKPOINT, source[len(CHECKPOINT_PREFIX):].strip() if source.startswith(CHECKPOINT_PREFIX)
                    else source)


def sd_vae_module(loaded):
    """The AutoencoderKL in what the manager yielded: a checkpoint's VAE, or a VAE file's module."""
    pipe = getattr(loaded, "pipe", None)
    if pipe is None:
        return loaded.module
    family = loaded.info.architecture.spec if getattr(loaded.info, "architecture", None) is not None else None
    vae = getattr(pipe, family.vae if family is not None else "vae", None)
    if vae is None:
        raise BadModelFile(loaded.info.path, "this checkpoint has no VAE")
    return vae


@contextmanager
def using_sd_vae(backend, source: str, **use_options) -> Iterator[object]:
    """The AutoencoderKL named by ``source``, with the device held for the duration."""
    with backend.manager.use(sd_vae_ref(resolved_sd_vae(backend, source)), **use_options) as loaded:
        yield sd_vae_module(loaded)


def beta_vae_hash(backend, name: str | None) -> str:
    """The file hash of the β-VAE a request names ("" when unknown), to tell whether a stored latent is its."""
    try:
        return backend.zoo_registry.find("beta_vae", name).sha256 or ""
    except ModelNotFound:
        return ""
