"""What the transformer families (SD 3/3.5, FLUX.1, Z-Image) share in their published files: the transformer
under model.diffusion_model.* in a whole checkpoint or with no prefix in a transformer-only file, the VAE and text
encoders under prefixes of their own when a file holds them. Helpers for the family files; not a family itself."""
from __future__ import annotations

from collections.abc import Callable, Mapping

from modules.models.families import ConfigFacts, Shapes, _ldm

PREFIX = "model.diffusion_model."  # a whole checkpoint's transformer; a transformer-only file has none
VAE_PREFIXES = (_ldm.VAE_PREFIX, "vae.")  # where whole FLUX / Z-Image checkpoints hold their VAE
# Pipeline components never loaded (the transformer families take no image prompts).
SKIPPED_COMPONENTS = ("image_encoder", "feature_extractor")


def transformer_prefix(shapes: Shapes, *keys: str) -> str | None:
    """"model.diffusion_model." (a whole checkpoint), "" (a transformer-only file) where the file holds every one
    of the family's `keys` under it; None: not this family's transformer."""
    for prefix in (PREFIX, ""):
        if all(prefix + key in shapes for key in keys):
            return prefix
    return None


def components_in_file(shapes: Shapes, prefixes: Mapping[str, tuple[str, ...]]) -> set[str]:
    """The components a single file holds weights for: the transformer, and each component of `prefixes`
    ({component: where a file may hold it}) found under one of its prefixes."""
    return {"transformer", *(component for component, where in prefixes.items()
                             if any(_ldm.has_prefix(shapes, prefix) for prefix in where))}


def recognises_config(pipelines: Mapping[str, str]) -> Callable[[ConfigFacts], bool]:
    """A diffusers folder of one of `pipelines` with a transformer."""
    def recognises(facts: ConfigFacts) -> bool:
        return facts.pipeline in pipelines.values() and facts.has("transformer")
    return recognises
