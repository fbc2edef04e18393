"""What a job asks the pipeline manager for: a kind of model and its name (None: the default one)."""
from __future__ import annotations

from dataclasses import dataclass

CHECKPOINT = "checkpoint"   # a Stable Diffusion checkpoint of models/Stable-diffusion (--ckpt-dir)
BETA_VAE = "beta_vae"       # a β-VAE of models/Latent
GAN = "gan"                 # a GAN of models/GAN
VAE_FILE = "vae_file"       # a stand-alone VAE of models/VAE (--vae-dir)
UPSCALER = "upscaler"       # an upscaler model of models/ESRGAN, models/RealESRGAN, models/SwinIR
FACE_RESTORER = "face_restorer"  # a face restorer of models/GFPGAN, by its restorer's name (GFPGAN)
KINDS = (CHECKPOINT, BETA_VAE, GAN, VAE_FILE, UPSCALER, FACE_RESTORER)
ZOO_KINDS = (BETA_VAE, GAN)  # small: each runs under its own lock, not in the device's line


@dataclass(frozen=True)
class ModelRef:
    kind: str
    name: str | None = None
    # A checkpoint's component files (Forge's forge_additional_modules): VAE / text encoders it lacks.
    modules: tuple[str, ...] = ()

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown model kind {self.kind!r}")


def as_ref(wanted: "ModelRef | str | None") -> ModelRef:
    """A checkpoint title (or None, the default checkpoint) as a reference, as older callers pass it."""
    return wanted if isinstance(wanted, ModelRef) else ModelRef(CHECKPOINT, wanted)
