"""How a job's guidance settings reach the pipeline, per family.

- SD 1.x/2.x/SDXL/SD3: the CFG scale is classifier-free guidance (the negative prompt against the prompt).
- FLUX.1: dev is guidance-distilled. Its "Distilled CFG Scale" (Forge's name; `distilled_cfg_scale` in the API)
  goes into the model as an input; schnell has no such input and is unaffected by it. The CFG scale is 1
  (off) for FLUX; above 1 it is applied as real CFG with the negative prompt (diffusers' true_cfg_scale,
  as Forge does): two transformer calls per step. Below 1 is refused, naming the field.
- Z-Image: its pipeline's guidance_scale g gives pos + g·(pos − neg), which is the CFG scale minus one: the CFG
  scale is 1 (off) for Turbo, more is real CFG with the negative prompt, below 1 is refused."""
from __future__ import annotations

from modules.errors import InvalidRequest

DEFAULT_DISTILLED_CFG_SCALE = 3.5  # Forge's default, and FLUX.1 dev's own (diffusers' guidance_scale)


def guidance_arguments(request, family, embeds: dict) -> dict:
    """The pipeline's keyword arguments for the prompt embeddings and guidance of `request`."""
    if family.guidance_kind == "cfg_minus_one":
        check_cfg_scale(request, family)
        guided = request.cfg_scale > 1
        return {"prompt_embeds": embeds["prompt_embeds"], "guidance_scale": request.cfg_scale - 1,
                "negative_prompt_embeds": embeds["negative_prompt_embeds"] if guided else None}
    if family.guidance_kind != "true_cfg":
        return {**embeds, "guidance_scale": request.cfg_scale}
    check_cfg_scale(request, family)
    arguments = {"prompt_embeds": embeds["prompt_embeds"], "pooled_prompt_embeds": embeds["pooled_prompt_embeds"],
                 "guidance_scale": distilled(request), "true_cfg_scale": request.cfg_scale}
    if real_cfg(request, family):
        arguments["negative_prompt_embeds"] = embeds["negative_prompt_embeds"]
        arguments["negative_pooled_prompt_embeds"] = embeds["negative_pooled_prompt_embeds"]
    return arguments


def real_cfg(request, family) -> bool:
    """FLUX's real CFG is on: its pipelines then call the transformer again with the negative prompt."""
    return family.guidance_kind == "true_cfg" and request.cfg_scale > 1


def check_cfg_scale(request, family) -> None:
    if family.guidance_kind in ("true_cfg", "cfg_minus_one") and request.cfg_scale < 1:
        raise InvalidRequest("cfg_scale", f"is {request.cfg_scale:g}; {family.label} uses 1 (off) or, for real "
                                          "CFG with the negative prompt, more than 1")


def distilled(request) -> float:
    value = getattr(request, "distilled_cfg_scale", None)
    return DEFAULT_DISTILLED_CFG_SCALE if value is None else value


def infotext_fields(request, family) -> dict:
    """"Distilled CFG Scale" for models that take it, as Forge writes it."""
    return {"Distilled CFG Scale": f"{distilled(request):g}"} if family.distilled_guidance else {}
