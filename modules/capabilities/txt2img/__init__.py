"""txt2img: Stable Diffusion images from a prompt (request.py: the request; run.py: the run)."""
from __future__ import annotations

from modules.capabilities.base import Capability, OutOfMemory
from modules.capabilities.txt2img.request import Txt2ImgRequest, validate
from modules.capabilities.txt2img.run import Txt2ImgResult, txt2img
from modules.capabilities.txt2img.script_result import as_txt2img_result
from modules.capabilities.txt2img.timing import Txt2ImgTiming
from modules.generation.batch_grid import add_batch_grid
from modules.capabilities.txt2img.chosen_vae import with_chosen_vae
from modules.generation.tiling import tiled
from modules.models.refs import CHECKPOINT, ModelRef


def _out_of_memory(request: Txt2ImgRequest) -> OutOfMemory:
    return OutOfMemory(f"out of memory for {request.width}x{request.height} × batch size {request.batch_size}: "
                       "try a smaller size or batch size, or start with --medvram / --lowvram")


TXT2IMG = Capability(
    name="txt2img", tab="txt2img", validate=validate,
    model=lambda request: ModelRef(CHECKPOINT, request.checkpoint, tuple(request.forge_additional_modules)),
    run=with_chosen_vae(tiled(txt2img)), empty_result=Txt2ImgResult, out_of_memory=_out_of_memory,
    script_result=as_txt2img_result,
    finish_job=add_batch_grid, timing=Txt2ImgTiming())

__all__ = ["TXT2IMG", "Txt2ImgRequest", "Txt2ImgResult"]
