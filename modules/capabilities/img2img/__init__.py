"""img2img: Stable Diffusion from a picture, with inpainting and outpainting (a mask, or pads per side).

    IMG2IMG.run(request: Img2ImgRequest, model: LoadedCheckpoint, job: Job, hooks: Hooks) -> Img2ImgResult
        every batch; images through hooks.image_ready, saved under outputs/<request.save_folder>/
    run.denoise(request, model, work: list[WorkArea], context: SamplingContext, start=None) -> latents
        one batch's sampling only (hires fix's second pass: WorkArea(Canvas(image, None, None), image, None)
        per picture, or `start`: scaled latents already upscaled); decode with vae_precision.decode_without_nans

request.py: the request (A1111's fields and names); canvas.py: fitting, pads, masks, fill, the "only masked"
crop; task_pipeline.py: the family's img2img/inpaint class around the cached modules (nothing copied)."""
from __future__ import annotations

from modules.capabilities.base import Capability, OutOfMemory
from modules.capabilities.img2img.request import Img2ImgRequest, validate
from modules.capabilities.img2img.run import Img2ImgResult, img2img
from modules.generation.batch_grid import add_batch_grid
from modules.capabilities.txt2img.chosen_vae import with_chosen_vae
from modules.generation.tiling import tiled
from modules.models.refs import CHECKPOINT, ModelRef


def _out_of_memory(request: Img2ImgRequest) -> OutOfMemory:
    width, height = request.output_size
    return OutOfMemory(f"out of memory for {width}x{height} × batch size {request.batch_size}: try a smaller "
                       "size or batch size, \"only masked\" for inpainting, or start with --medvram / --lowvram")


def _script_result(output, request: Img2ImgRequest) -> Img2ImgResult:
    from modules.capabilities.txt2img.script_result import as_txt2img_result

    if isinstance(output, Img2ImgResult):
        return output
    plain = as_txt2img_result(output, request)
    return Img2ImgResult(request, images=plain.images, infotexts=plain.infotexts, seeds=plain.seeds,
                         paths=plain.paths)


def _batch_grid(result: Img2ImgResult, hooks) -> Img2ImgResult:
    return add_batch_grid(result, hooks, folder="img2img-grids")  # A1111's folder for img2img grids


IMG2IMG = Capability(
    name="img2img", tab="img2img", validate=validate,
    model=lambda request: ModelRef(CHECKPOINT, request.checkpoint, tuple(request.forge_additional_modules)),
    run=with_chosen_vae(tiled(img2img)), empty_result=Img2ImgResult, out_of_memory=_out_of_memory, script_result=_script_result,
    finish_job=_batch_grid)

__all__ = ["IMG2IMG", "Img2ImgRequest", "Img2ImgResult"]
