"""The Latent Explorer's capabilities, one per job kind: β-VAE decode, encode, random, data-set latent,
interpolate, traverse and map (models/Latent, each under its model's own lock, so dragging a slider
never waits behind a Stable Diffusion job), and the SD VAE explorer's encode, decode and directions
(a checkpoint's VAE or a file of models/VAE, holding the device)."""
from __future__ import annotations

from modules.capabilities.base import Capability, OutOfMemory, RunContext
from modules.capabilities.latent import models, run
from modules.capabilities.latent.request import (
    DataSetLatentRequest, LatentDecodeRequest, LatentEncodeRequest, LatentInterpolateRequest, LatentMapRequest,
    LatentTraverseRequest, RandomLatentRequest)
from modules.capabilities.latent.sd_request import SdVaeDecodeRequest, SdVaeDirectionsRequest, SdVaeEncodeRequest
from modules.capabilities.latent.state import from_png
from modules.job_limits import check_image

TAB = "latent"


def _validated(request, context: RunContext):
    return request.validated()


def _beta_validated(request, context: RunContext):
    """No model named: the built-in β-VAE where it is here (else the first), as the tab opens on."""
    request = request.validated()
    if request.model is None and context.backend is not None:
        request.model = models.default_title(context.backend)
    return request


def _encode_validated(request: LatentEncodeRequest, context: RunContext) -> LatentEncodeRequest:
    """A PNG saved here names the β-VAE it was made with: that one is used where it is here."""
    request = _beta_validated(request, context)
    stored = from_png(request.image, "image")
    backend = context.backend
    if stored is None or not stored.model_hash or backend is None:
        return request
    selected = backend.zoo_registry.find("beta_vae", request.model)
    if stored.model_hash == selected.sha256:
        return request
    title = models.title_with_hash(backend, stored.model_hash)
    if title is not None:
        return LatentEncodeRequest(title, request.image, f"switched to {title}, the model it was made with")
    return LatentEncodeRequest(request.model, request.image,
                               f"made with {stored.model or 'another model'} [{stored.model_hash[:10]}], not found here")


def _sd_encode_validated(request: SdVaeEncodeRequest, context: RunContext) -> SdVaeEncodeRequest:
    request = request.validated()
    check_image(request.size, request.size, context.limits, "size")  # --max-pixels
    return _resolved(request, context)


def _sd_directions_validated(request: SdVaeDirectionsRequest, context: RunContext) -> SdVaeDirectionsRequest:
    from modules.capabilities.latent.sd_vae import MAX_DIRECTIONS

    request = request.validated(MAX_DIRECTIONS)
    check_image(request.size, request.size, context.limits, "size")
    return _resolved(request, context)


def _resolved(request, context: RunContext):
    """The VAE source with its prefix ("checkpoint: …" or "file: …"), so the model to load is known."""
    if context.backend is not None:
        request.vae = models.resolved_sd_vae(context.backend, request.vae)
    return request


def _beta_vae(request):
    return models.beta_vae_ref(request.model)


def _sd_vae(request):
    return models.sd_vae_ref(request.vae)


def _nothing(request):
    return None


def _small_vae_out_of_memory(request) -> OutOfMemory:
    return OutOfMemory("the device ran out of memory: ask for fewer frames, values or data-set images")


def _sd_out_of_memory(request) -> OutOfMemory:
    return OutOfMemory("the device ran out of memory: pick a smaller working size (or fewer direction images)")


def _beta(name: str, run_job, validate=_beta_validated) -> Capability:
    return Capability(name, TAB, validate, _beta_vae, run_job, _nothing, _small_vae_out_of_memory)


def _sd(name: str, run_job, validate) -> Capability:
    return Capability(name, TAB, validate, _sd_vae, run_job, _nothing, _sd_out_of_memory)


DECODE = _beta("latent-decode", run.decode)
ENCODE = _beta("latent-encode", run.encode, _encode_validated)
RANDOM = _beta("latent-random", run.random)
DATASET = _beta("latent-dataset", run.dataset)
INTERPOLATE = _beta("latent-interpolate", run.interpolate)
TRAVERSE = _beta("latent-traverse", run.traverse)
MAP = _beta("latent-map", run.latent_map)
SD_ENCODE = _sd("latent-sd-encode", run.sd_encode, _sd_encode_validated)
SD_DECODE = _sd("latent-sd-decode", run.sd_decode, _validated)
SD_DIRECTIONS = _sd("latent-sd-directions", run.sd_directions, _sd_directions_validated)

__all__ = ["DECODE", "ENCODE", "RANDOM", "DATASET", "INTERPOLATE", "TRAVERSE", "MAP", "SD_ENCODE", "SD_DECODE",
           "SD_DIRECTIONS", "DataSetLatentRequest", "LatentDecodeRequest", "LatentEncodeRequest",
           "LatentInterpolateRequest", "LatentMapRequest", "LatentTraverseRequest", "RandomLatentRequest",
           "SdVaeDecodeRequest", "SdVaeDirectionsRequest", "SdVaeEncodeRequest"]
