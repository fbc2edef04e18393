"""The GAN Sampler capability: sample a grid of seeds (or a point of the seed plane, or imported latents)
and render interpolation videos between seeds. Both run through the runner (modules/capabilities/runner.py):

    backend.run(gan, GanRequest(seeds="0-7", class_name="red circle"))      -> GanResult
    backend.run(gan_video, GanVideoRequest(seeds="0-3", format="gif"))     -> GanVideoResult
    backend.run(gan_project, GanProjectRequest(image=picture, steps=200)) -> GanProjectResult

    request.py  GanRequest, GanVideoRequest: validated once, errors naming the field
    run.py      sampling: a pure function of (request, loaded generator, job, hooks)
    video.py    interpolation videos (GIF, MP4)
    projection.py  image -> latent: the w whose picture is nearest an uploaded image (NVIDIA projector-style)
    state.py    each image's latent, portable in PNG text chunks and .json files
"""
from __future__ import annotations

from modules.capabilities.base import Capability, OutOfMemory, RunContext
from modules.capabilities.gan.projection import GanProjectResult, project, with_loss, with_perceptual
from modules.capabilities.gan.request import ALL_CLASSES, GanProjectRequest, GanRequest, GanVideoRequest, check_limits
from modules.capabilities.gan.run import GanCapabilities, GanResult, capabilities, sample
from modules.capabilities.gan.video import GanVideoResult, render_video
from modules.models.refs import GAN, ModelRef

__all__ = ["ALL_CLASSES", "GanCapabilities", "GanProjectRequest", "GanProjectResult", "GanRequest", "GanResult",
           "GanVideoRequest", "GanVideoResult", "find_directions", "gan", "gan_project", "gan_video", "model_facts"]


def _validated(request, context: RunContext):
    request = request.validated()
    check_limits(request, context.limits)
    return request


def _model(request) -> ModelRef:
    return ModelRef(GAN, request.model)


def _sample(request: GanRequest, loaded, job, hooks) -> GanResult:
    return sample(request, loaded.module, loaded.info, job, hooks)


def _video(request: GanVideoRequest, loaded, job, hooks) -> GanVideoResult:
    outdir = hooks.p.outdir if hooks is not None else None  # the job owner's outputs folder
    return render_video(request, loaded.module, loaded.info, job, outdir)


def _sample_out_of_memory(request: GanRequest) -> OutOfMemory:
    count = len(request.latents) if request.latents else len(request.seeds)
    return OutOfMemory(f"out of memory for {count} GAN image{'s' if count != 1 else ''}: try fewer seeds")


def _video_out_of_memory(request: GanVideoRequest) -> OutOfMemory:
    return OutOfMemory(f"out of memory for a {request.size}x{request.size} video: try a smaller size")


def _sample_result(output, request: GanRequest) -> GanResult:
    """What a selected GAN script returned: its GanResult, or images (a list, or an object with .images)."""
    if isinstance(output, GanResult):
        return output
    if isinstance(output, (list, tuple)):
        images, infotexts, paths = list(output), [], []
    else:  # a ScriptOutput (modules/extensions/scripts.py)
        images = list(getattr(output, "images", []) or [])
        infotexts = list(getattr(output, "infotexts", []) or [])
        paths = list(getattr(output, "paths", []) or [])
    infotexts += [str(i.info.get("parameters", "")) for i in images[len(infotexts):]]
    return GanResult(request, "", images=images, infotexts=infotexts, paths=paths)


gan = Capability(
    name="gan", tab="gan", validate=_validated, model=_model, run=_sample,
    empty_result=lambda request: GanResult(request, ""), out_of_memory=_sample_out_of_memory,
    script_result=_sample_result)

# No extension hooks: the GAN tab's scripts make grids of images, not videos.
gan_video = Capability(
    name="gan-video", tab="gan-video", validate=_validated, model=_model, run=_video,
    empty_result=lambda request: GanVideoResult(request, "", None, 0, ""), out_of_memory=_video_out_of_memory)


def _project_validated(request, context: RunContext):
    from modules.job_limits import check_image

    request = request.validated()
    check_image(*request.image.size, context.limits, "image")  # the upload, before it is resized
    return with_loss(request, None if context.backend is None else context.backend.manager)


def _project(request: GanProjectRequest, loaded, job, hooks) -> GanProjectResult:
    with with_perceptual(request, hooks.p.backend.manager) as request:
        return project(request, loaded.module, loaded.info, job)


# No extension hooks: a projection makes one latent, not a batch of images.
gan_project = Capability(
    name="gan-project", tab="gan-project", validate=_project_validated, model=_model, run=_project,
    empty_result=lambda request: GanProjectResult(request, ""),
    out_of_memory=lambda request: OutOfMemory("out of memory projecting an image: try a smaller model"))


def find_directions(manager, name: str | None, method: str = "sefa", layers=None, count: int = 8,
                    class_index: int = 0):
    """(info, Directions) of a StyleGAN network of models/GAN: SeFa's or GANSpace's (directions.py)."""
    from modules.capabilities.gan import directions
    from modules.errors import InvalidRequest

    if method not in directions.METHODS:
        raise InvalidRequest("method", f"must be one of {', '.join(directions.METHODS)}, got {method!r}")
    with manager.use(ModelRef(GAN, name)) as loaded:
        if not capabilities(loaded.module).stylegan:
            raise InvalidRequest("model", "latent directions are for StyleGAN networks")
        if method == "sefa":
            return loaded.info, directions.sefa(loaded.module, layers, count)
        return loaded.info, directions.ganspace(loaded.module, class_index, count, layers=layers)


def model_facts(manager, name: str | None) -> tuple[object, GanCapabilities]:
    """(info, capabilities) of a GAN of models/GAN by title, name or hash (None: the first): its classes,
    z size and layers, for a tab's controls and the REST model list."""
    with manager.use(ModelRef(GAN, name)) as loaded:
        return loaded.info, capabilities(loaded.module)
