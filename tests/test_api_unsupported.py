"""No silently ignored field: every field of A1111's txt2img and img2img requests, sent at a value other than its
default, changes the answer or is a 422 naming it. The few that change nothing in A1111 either (they only
matter with another field, or only say what to send back) are listed with the reason, and must change nothing."""
from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image, ImageDraw
from tests.inprocess_app import app_client

BASE = {"prompt": "a red circle", "negative_prompt": "", "seed": 5, "steps": 3, "width": 64, "height": 64,
        "sampler_index": "Euler", "cfg_scale": 7, "override_settings": {"sd_model_checkpoint": "tiny-sd15"}}


def b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def init_picture(seed: int = 0, size=(80, 64)) -> str:
    return b64(Image.fromarray((np.random.default_rng(seed).random((size[1], size[0], 3)) * 255).astype(np.uint8)))


def mask_picture() -> str:
    mask = Image.new("L", (80, 64), 0)
    ImageDraw.Draw(mask).rectangle((20, 16, 51, 47), fill=255)
    return b64(mask)


IMG2IMG_BASE = {**BASE, "init_images": [init_picture()], "denoising_strength": 0.75}
MASKED = {"mask": mask_picture(), "mask_blur": 4, "inpaint_full_res": True, "inpaint_full_res_padding": 8}

# field: (value, extra base fields for the comparison)
CHANGES = {
    "prompt": ("a blue square", {}), "negative_prompt": ("blurry", {}), "seed": (6, {}), "steps": (4, {}),
    "cfg_scale": (3.0, {}), "width": (72, {}), "height": (72, {}), "batch_size": (2, {}), "n_iter": (2, {}),
    "sampler_name": ("DPM++ 2M", {}), "sampler_index": ("DPM++ 2M", {}),
    "scheduler": ("Karras", {"sampler_index": "Euler"}),
    "subseed_strength": (0.5, {"subseed": 7}), "seed_resize_from_w": (32, {"seed_resize_from_h": 32}),
    "seed_resize_from_h": (32, {"seed_resize_from_w": 32}),
    "eta": (0, {"sampler_index": "Euler a"}),  # no added noise: A1111's Euler a with eta 0 is Euler
    "override_settings": ({"sd_model_checkpoint": "tiny-sd15", "CLIP_stop_at_last_layers": 2}, {}),
    "send_images": (False, {}),  # the pictures are not sent back
    "styles": (["cinematic"], {}),  # saved in the fixture below
    "tiling": (True, {}),  # pictures that wrap around (tests/test_tiling.py)
}
TXT2IMG_CHANGES = {"enable_hr": (True, {})}  # hires fix: twice the size (tests/test_hires_fix.py)
IMG2IMG_CHANGES = {
    "init_images": ([init_picture(1)], {}), "denoising_strength": (0.4, {}), "resize_mode": (1, {}),
    "mask": (mask_picture(), {}), "mask_blur": (0, MASKED),
    "inpainting_fill": (1, MASKED), "inpaint_full_res": (False, MASKED), "inpaint_full_res_padding": (24, MASKED),
    "inpainting_mask_invert": (1, MASKED),
}
REFUSED = {
    "s_churn": 0.5, "s_tmin": 0.5, "s_tmax": 5.0, "s_noise": 0.9,
    "s_min_uncond": 0.5, "firstpass_image": "abc",
    "infotext": "Steps: 5", "ddim_discretize": "quad", "script_name": "no such script",
    "alwayson_scripts": {"no such script": {"args": []}},
}
# mask_blur_x and _y: equal, they are mask_blur (test_img2img.py); only a blur differing across and down is missing.
IMG2IMG_REFUSED = {"enable_hr": True, "mask_round": False, "initial_noise_multiplier": 0.9, "latent_mask": "abc",
                   "mask_blur_x": 8, "mask_blur_y": 8}
# Changes nothing in A1111 either: why.
NO_EFFECT = {
    "refiner_switch_at": (0.5, "only with refiner_checkpoint"),
    "subseed": (7, "only with subseed_strength > 0"),
    "denoising_strength": (0.5, "txt2img: only with enable_hr"),
    "firstphase_width": (128, "only with enable_hr"), "firstphase_height": (128, "only with enable_hr"),
    "hr_scale": (3.0, "only with enable_hr"), "hr_upscaler": ("Lanczos", "only with enable_hr"),
    "hr_second_pass_steps": (5, "only with enable_hr"), "hr_resize_x": (128, "only with enable_hr"),
    "hr_resize_y": (128, "only with enable_hr"), "hr_checkpoint_name": ("tiny-sd15", "only with enable_hr"),
    "hr_sampler_name": ("Euler a", "only with enable_hr"), "hr_scheduler": ("Karras", "only with enable_hr"),
    "hr_prompt": ("x", "only with enable_hr"), "hr_negative_prompt": ("x", "only with enable_hr"),
    "save_images": (True, "saves a copy of the same picture"),
    "do_not_save_samples": (True, "saving only"), "do_not_save_grid": (True, "saving only"),
    "override_settings_restore_afterwards": (False, "this server never changes settings for a job"),
    "disable_extra_networks": (True, "only for <lora:...> prompts; extra networks are not loaded here"),
    "comments": ({"note": "x"}, "shown beside the picture only"),
    "task_id": ("unsupported-test", "names the job"), "force_task_id": ("unsupported-test-2", "names the job"),
    "script_args": ([1, 2], "only with script_name"),
    "image_cfg_scale": (2.0, "instruct-pix2pix models only, and they are not supported"),
    "include_init_images": (True, "echoes init_images in `parameters`"),
}
# Changes the picture only with a second checkpoint of the same latent space, which these fixtures lack.
CHECKED_ELSEWHERE = {"refiner_checkpoint": "tests/test_refiner.py (a tiny SDXL refiner after a tiny SDXL)",
                     "restore_faces": "tests/test_face_restoration.py (a random GFPGAN file, a drawn face)"}
IMG2IMG_ONLY = set(IMG2IMG_CHANGES) | set(IMG2IMG_REFUSED) | {"image_cfg_scale", "include_init_images"}


@pytest.fixture(scope="module")
def client(backend, tmp_path_factory):
    from modules.styles import PromptStyle

    backend.styles.save(PromptStyle("cinematic", "{prompt}, a blue square", "green"))
    with app_client(backend, tmp_path_factory.mktemp("unsupported") / "config.json") as client:
        yield client


def answer(client, route: str, body: dict):
    response = client.post(f"/sdapi/v1/{route}", json=body)
    return response.status_code, response.json()


def pictures(body: dict) -> list[bytes]:
    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(i))).convert("RGB")).tobytes() for i in body["images"]]


ROUTES = [("txt2img", BASE), ("img2img", IMG2IMG_BASE)]


def cases(route: str):
    changes = {**CHANGES, **(IMG2IMG_CHANGES if route == "img2img" else TXT2IMG_CHANGES)}
    refused = {**REFUSED, **(IMG2IMG_REFUSED if route == "img2img" else {})}
    for field, (value, base) in changes.items():
        yield pytest.param(route, field, value, base, "changes", id=f"{route}-{field}-changes")
    for field, value in refused.items():
        yield pytest.param(route, field, value, {}, "refused", id=f"{route}-{field}-refused")
    for field, (value, _why) in NO_EFFECT.items():
        if field in ("task_id", "force_task_id"):
            value = f"{value}-{route}"  # a task id is used once
        if field not in changes and (route == "img2img" or field not in IMG2IMG_ONLY):
            yield pytest.param(route, field, value, {}, "no effect", id=f"{route}-{field}-no-effect")


@pytest.mark.parametrize("route,field,value,base_fields,expected", [*cases("txt2img"), *cases("img2img")])
def test_every_a1111_field_changes_the_answer_or_is_refused_by_name(client, route, field, value, base_fields,
                                                                     expected):
    base = {**dict(ROUTES)[route], **base_fields}
    status, before = answer(client, route, base)
    assert status == 200, before
    status, after = answer(client, route, {**base, field: value})
    if expected == "refused":
        assert status == 422 and field in after["detail"], after
        assert "not supported" in after["detail"] or "unknown" in after["detail"]
        return
    assert status == 200, after
    if expected == "changes":
        assert pictures(after) != pictures(before), f"{field}={value!r} changed nothing"
    else:
        assert pictures(after) == pictures(before), f"{field}={value!r} changed the picture"


def test_every_a1111_field_is_covered():
    """The lists above hold A1111's whole txt2img and img2img requests (its StableDiffusionProcessing* fields)."""
    a1111 = {"prompt", "negative_prompt", "styles", "seed", "subseed", "subseed_strength", "seed_resize_from_h",
             "seed_resize_from_w", "sampler_name", "scheduler", "batch_size", "n_iter", "steps", "cfg_scale", "width",
             "height", "restore_faces", "tiling", "do_not_save_samples", "do_not_save_grid", "eta",
             "denoising_strength", "s_min_uncond", "s_churn", "s_tmax", "s_tmin", "s_noise", "override_settings",
             "override_settings_restore_afterwards", "refiner_checkpoint", "refiner_switch_at",
             "disable_extra_networks", "firstpass_image", "comments", "enable_hr", "firstphase_width",
             "firstphase_height", "hr_scale", "hr_upscaler", "hr_second_pass_steps", "hr_resize_x", "hr_resize_y",
             "hr_checkpoint_name", "hr_sampler_name", "hr_scheduler", "hr_prompt", "hr_negative_prompt",
             "force_task_id", "sampler_index", "script_name", "script_args", "send_images", "save_images",
             "alwayson_scripts", "infotext", "ddim_discretize",
             # img2img
             "init_images", "resize_mode", "image_cfg_scale", "mask", "mask_blur_x", "mask_blur_y", "mask_blur",
             "mask_round", "inpainting_fill", "inpaint_full_res", "inpaint_full_res_padding",
             "inpainting_mask_invert", "initial_noise_multiplier", "latent_mask", "include_init_images"}
    covered = (set(CHANGES) | set(TXT2IMG_CHANGES) | set(IMG2IMG_CHANGES) | set(REFUSED) | set(IMG2IMG_REFUSED)
               | set(NO_EFFECT) | set(CHECKED_ELSEWHERE))
    assert a1111 <= covered, sorted(a1111 - covered)


def test_a_refusal_says_what_is_missing(client):
    status, body = answer(client, "txt2img", {**BASE, "s_churn": 0.5})
    assert status == 422
    assert body["detail"] == "s_churn: 0.5 is not supported: sampler noise settings (s_churn) are not available"
    assert json.dumps(body).count("Traceback") == 0
