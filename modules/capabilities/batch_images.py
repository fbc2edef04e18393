"""What txt2img and img2img do alike with a batch's sampled latents: the infotext fields its images share, the
pictures decoded one by one, and each finished image handed to the hooks (post-processing, saving) and kept in the
job's result."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from PIL import Image

from modules.capabilities.base import GenerationFailed, SaveSpec
from modules.capabilities.face_restore_step import face_restoration_infotext
from modules.capabilities.scripting import Hooks, ImageNotSaved
from modules.capabilities.txt2img.vae_precision import decode_without_nans
from modules.generation import preview, stop_points
from modules.generation.sampling_context import SamplingContext


def batch_infotext(result, request, latents: torch.Tensor, hooks: Hooks, context: SamplingContext) -> dict:
    """The infotext fields every image of the batch shares: the refiner's, the scripts', the TI hashes (kept as the
    result's extra_generation_params, A1111's), face restoration's. NaN latents are refused before any decoding."""
    if not torch.isfinite(latents).all():
        raise GenerationFailed("the sampler produced NaN values; try another sampler, fewer steps, "
                               "or --precision fp32")
    extra = {**(context.refiner.infotext() if context.refiner is not None else {}), **hooks.extra_infotext()}
    if context.embeddings is not None:
        extra.update(context.embeddings.infotext())  # TI hashes
    result.extra_generation_params = dict(extra)
    extra.update(face_restoration_infotext(request))
    return extra


@contextmanager
def decoding(model, job) -> Iterator[tuple[Callable[[torch.Tensor], Image.Image], Callable[[], None]]]:
    """While inside: `decode(latent)`, one image's picture from its latents, and `check()` for the work after it
    (face restoration). An Interrupt pressed meanwhile (or a client that leaves) stops before the next image, or
    inside the VAE, so the images done so far are kept."""
    interrupts = job.interrupts

    def check() -> None:
        job.check_decoding(interrupts)

    vae = model.info.architecture.spec.vae_of(model.pipe)

    def decode(latent: torch.Tensor) -> Image.Image:
        check()
        return preview.to_pil(decode_without_nans(vae, latent[None]))[0]

    with stop_points.checked(getattr(vae, "decoder", None), check):
        yield decode, check


def keep_image(result, image: Image.Image, text: str, seed: int, subseed: int, index: int,
               save_to: SaveSpec | None, hooks: Hooks) -> None:
    """`image` through hooks.image_ready (saved when `save_to` says where), then into the result with its infotext
    and seeds."""
    try:
        image, path = hooks.image_ready(image, text, seed, index, save_to)
        if path is not None:
            result.paths.append(path)
    except ImageNotSaved as e:  # a full disk loses the file, never the image: the user still gets it
        image = e.image
        result.save_errors.append(str(e))
    image.info["parameters"] = text
    result.images.append(image)
    result.infotexts.append(text)
    result.seeds.append(seed)
    result.subseeds.append(subseed)
