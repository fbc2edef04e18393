"""img2img on tiny checkpoints and the built-in zoo-shapes model: the denoising strength, A1111's step count,
resize modes, seeds and batches, the task pipeline sharing the cached weights, and POST /sdapi/v1/img2img."""
from __future__ import annotations

import base64
import io

import numpy as np
import torch
import pytest
from PIL import Image, ImageDraw

from modules.capabilities.img2img import IMG2IMG, Img2ImgRequest
from modules.capabilities.img2img import canvas
from modules.capabilities.img2img.run import encode
from modules.errors import InvalidRequest
from modules.generation import preview
from modules.generation.infotext import parse_infotext
from tests.inprocess_app import app_client


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def noise_picture(seed: int, size=(64, 64)) -> Image.Image:
    return Image.fromarray((np.random.default_rng(seed).random((size[1], size[0], 3)) * 255).astype(np.uint8))


@pytest.fixture
def request_for():
    def make(**overrides) -> Img2ImgRequest:
        values = dict(prompt="a red circle", negative_prompt="", steps=4, width=64, height=64, seed=7,
                      checkpoint="tiny-sd15", init_images=[noise_picture(0)], save_images=False)
        values.update(overrides)
        return Img2ImgRequest(**values)
    return make


def round_trip(backend, image: Image.Image, checkpoint="tiny-sd15") -> Image.Image:
    """`image` through the checkpoint's VAE (encoded, decoded): what denoising strength 0 should give."""
    with backend.manager.use(checkpoint) as model:
        vae = model.pipe.vae
        latents = encode(vae, [image], model.execution_device)
        return preview.to_pil(preview.decode_latents(vae, latents))[0]


def test_denoise_0_returns_the_init_image_through_the_vae(backend, request_for):
    init = noise_picture(1)
    result = backend.run(IMG2IMG, request_for(init_images=[init], denoising_strength=0.0))
    assert np.abs(pixels(result.images[0]) - pixels(round_trip(backend, init))).max() <= 1
    assert parse_infotext(result.infotexts[0])["Denoising strength"] == "0"


def test_denoise_1_ignores_the_init_image_and_lower_strengths_keep_more_of_it(backend, request_for):
    a, b = noise_picture(2), Image.new("RGB", (64, 64), (250, 20, 20))

    def gap(strength: float) -> float:
        one = backend.run(IMG2IMG, request_for(init_images=[a], denoising_strength=strength)).images[0]
        two = backend.run(IMG2IMG, request_for(init_images=[b], denoising_strength=strength)).images[0]
        return float(np.abs(pixels(one) - pixels(two)).mean())

    at_0, at_half, at_1 = gap(0.0), gap(0.5), gap(1.0)
    assert at_1 < 0.2 * at_0  # the same seed gives (nearly) the same picture from either start
    assert at_1 < at_half < at_0


@pytest.mark.parametrize("sampler", ["Euler a", "Heun", "DPM++ 2M"])  # Heun: two model calls a step
def test_a1111_step_semantics_steps_times_strength_are_run(backend, request_for, sampler):
    job = backend.new_job("img2img")
    reported: list[int] = []
    original = job.report_step
    job.report_step = lambda step: (reported.append(step), original(step))
    result = backend.run(IMG2IMG, request_for(steps=10, denoising_strength=0.5, sampler=sampler), job)
    assert reported[-1] == 5 and sorted(set(reported)) == [1, 2, 3, 4, 5]
    assert job.state == "done" and job.progress == 1.0
    fields = parse_infotext(result.infotexts[0])
    assert (fields["Steps"], fields["Denoising strength"]) == ("10", "0.5")  # pasted back, it asks the same


def test_the_task_pipeline_shares_every_weight_and_leaves_the_cached_pipeline_alone(backend):
    from modules.capabilities.img2img.task_pipeline import task_pipeline
    from modules.generation.samplers import find_sampler

    with backend.manager.use("tiny-sd15") as model:
        cached = model.pipe
        before = {name: (type(module), getattr(module, "dtype", None)) for name, module in cached.components.items()}
        scheduler_before = cached.scheduler
        for task in ("img2img", "inpaint"):
            sampler = find_sampler("Euler").build(model.scheduler_config)
            view = task_pipeline(model, task, sampler)
            assert type(view).__name__ == model.info.architecture.spec.pipeline_name(task)
            assert view.scheduler is sampler and cached.scheduler is scheduler_before
            for name in ("unet", "vae", "text_encoder"):
                shared, own = getattr(cached, name), getattr(view, name)
                assert own is shared
                assert [p.data_ptr() for p in own.parameters()] == [p.data_ptr() for p in shared.parameters()]
        after = {name: (type(module), getattr(module, "dtype", None)) for name, module in cached.components.items()}
        assert after == before and type(cached).__name__ == "StableDiffusionPipeline"


def test_seeds_and_batches_take_the_init_images_in_turn(backend, request_for):
    red, blue = Image.new("RGB", (64, 64), (255, 0, 0)), Image.new("RGB", (64, 64), (0, 0, 255))
    result = backend.run(IMG2IMG, request_for(init_images=[red, blue], batch_size=2, batch_count=2, seed=100,
                                              denoising_strength=0.0))
    first = result.index_of_first_image  # 1: A1111's batch grid comes first
    assert first == 1 and result.images[0].size == (128, 128)
    assert result.seeds[first:] == [100, 101, 102, 103] and len(result.images) == 5
    starts = [pixels(round_trip(backend, red)), pixels(round_trip(backend, blue))]
    for index, image in enumerate(result.images[first:]):
        assert np.abs(pixels(image) - starts[index % 2]).max() <= 1
    again = backend.run(IMG2IMG, request_for(init_images=[red], seed=101, denoising_strength=0.6)).images[0]
    batch = backend.run(IMG2IMG, request_for(init_images=[blue, red], batch_size=2, seed=100,
                                             denoising_strength=0.6))
    batch = batch.images[batch.index_of_first_image + 1]
    assert np.abs(pixels(again) - pixels(batch)).max() <= 1  # a seed's image does not depend on its batch


def test_resize_modes_fit_the_picture_as_a1111_does():
    wide = Image.new("RGB", (80, 40), (255, 0, 0))
    ImageDraw.Draw(wide).rectangle((0, 0, 19, 39), fill=(0, 0, 255))  # a blue left quarter
    blue = lambda image, xy: image.getpixel(xy)[2] > 200 and image.getpixel(xy)[0] < 50  # noqa: E731
    just = canvas.fit(wide, 64, 64, 0)
    assert just.size == (64, 64) and blue(just, (2, 32))  # stretched: the blue quarter kept
    crop = canvas.fit(wide, 64, 64, 1)
    assert crop.size == (64, 64) and not blue(crop, (2, 32))  # the sides cut off
    fill = canvas.fit(wide, 64, 64, 2)
    assert fill.size == (64, 64)
    assert blue(fill, (2, 2)) and not blue(fill, (60, 62))  # the edges stretched into the new rows


@pytest.mark.parametrize("mode", [0, 1, 2, 3, "Crop and resize", "just resize (latent upscale)"])
def test_every_resize_mode_makes_the_asked_size(backend, request_for, mode):
    result = backend.run(IMG2IMG, request_for(init_images=[noise_picture(3, (40, 32))], resize_mode=mode,
                                              width=64, height=48))
    assert result.images[0].size == (64, 48)


@pytest.mark.parametrize("field,value", [("denoising_strength", 1.5), ("resize_mode", 4), ("resize_mode", "stretch"),
                                         ("mask_blur", -1), ("inpainting_fill", 9), ("pad_left", 12),
                                         ("init_images", []), ("inpaint_full_res_padding", 10_000)])
def test_bad_values_are_refused_naming_the_field(request_for, field, value):
    with pytest.raises(InvalidRequest) as refused:
        request_for(**{field: value}).validated()
    assert refused.value.field == field


def test_images_are_saved_under_img2img_images_with_their_infotext(backend, request_for):
    result = backend.run(IMG2IMG, request_for(save_images=True, denoising_strength=0.5))
    assert len(result.paths) == 1 and result.paths[0].parent.parent.name == "img2img-images"
    with Image.open(result.paths[0]) as saved:
        assert saved.info["parameters"] == result.infotexts[0]


# The built-in zoo-shapes model ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def zoo_backend(tmp_path_factory):
    from modules.backend import Backend, BackendConfig
    from modules.devices import device_config
    from modules.paths import MODELS_DIR

    folder = MODELS_DIR / "Stable-diffusion" / "zoo-shapes"
    if not (folder / "model_index.json").exists():
        pytest.skip("the built-in zoo-shapes weights are not shipped")
    root = tmp_path_factory.mktemp("zoo-models")
    (root / "Stable-diffusion").mkdir()
    (root / "Stable-diffusion" / "zoo-shapes").symlink_to(folder)
    work = tmp_path_factory.mktemp("zoo-backend")
    return Backend(BackendConfig(models_dir=root, outdir=work / "outputs", cache_dir=work / "cache",
                                 devices=device_config("cpu"), offline=True))


def red_circle() -> Image.Image:
    image = Image.new("RGB", (32, 32), (255, 255, 255))
    ImageDraw.Draw(image).ellipse((8, 8, 23, 23), fill=(230, 20, 20))
    return image


def dominant_colour(image: Image.Image) -> str:
    from modules.zoo import shapes

    array = pixels(image).reshape(-1, 3).astype(float)
    far = np.abs(array - np.array(shapes.BACKGROUNDS["white"])).sum(1) > 120
    assert far.sum() >= 10, "no shape left"
    colour = np.median(array[far], axis=0)
    return min(shapes.COLOURS, key=lambda name: np.abs(colour - np.array(shapes.COLOURS[name])).sum())


def test_zoo_shapes_turns_a_red_circle_blue_at_denoise_0_6(zoo_backend):
    circle = red_circle()
    assert dominant_colour(circle) == "red"
    turned = []
    for seed in range(3):
        request = Img2ImgRequest(prompt="a blue circle on a white background", init_images=[circle], width=32,
                                 height=32, steps=20, cfg_scale=5.0, seed=seed, denoising_strength=0.6,
                                 checkpoint="zoo-shapes", save_images=False)
        turned.append(dominant_colour(zoo_backend.run(IMG2IMG, request).images[0]))
    assert turned.count("blue") >= 2, turned


def red_square_and_circle() -> Image.Image:
    image = Image.new("RGB", (32, 32), (255, 255, 255))
    ImageDraw.Draw(image).rectangle((2, 10, 13, 21), fill=(230, 20, 20))
    ImageDraw.Draw(image).ellipse((18, 10, 29, 21), fill=(230, 20, 20))
    return image


def test_zoo_shapes_inpaints_the_masked_circle_blue_and_leaves_the_square_alone(zoo_backend):
    """The README's inpainting example: the right half masked, the prompt asks for a blue circle there."""
    picture = red_square_and_circle()
    mask = Image.new("L", (32, 32), 0)
    ImageDraw.Draw(mask).rectangle((16, 0, 31, 31), fill=255)
    inside = []
    for seed in range(4):
        request = Img2ImgRequest(prompt="a red square on the left and a blue circle on the right on a white background",
                                 init_images=[picture], mask=mask, mask_blur=0, width=32, height=32, steps=20,
                                 cfg_scale=7.0, seed=seed, denoising_strength=0.75, checkpoint="zoo-shapes",
                                 save_images=False)
        image = zoo_backend.run(IMG2IMG, request).images[0]
        assert np.array_equal(pixels(image)[:, :16], pixels(picture)[:, :16])  # outside the mask: untouched
        inside.append(dominant_colour(image.crop((16, 0, 32, 32))))
    assert "red" not in inside and inside.count("blue") >= 3, inside


def test_zoo_shapes_inpaints_a_second_shape_into_an_empty_corner(zoo_backend):
    picture = Image.new("RGB", (32, 32), (255, 255, 255))
    ImageDraw.Draw(picture).ellipse((2, 2, 13, 13), fill=(230, 20, 20))  # a red circle in the top left
    mask = Image.new("L", (32, 32), 0)
    ImageDraw.Draw(mask).rectangle((16, 16, 31, 31), fill=255)  # the empty bottom right
    made = []
    for seed in range(4):
        request = Img2ImgRequest(prompt="a red circle in the top left and a blue square in the bottom right on a "
                                 "white background", init_images=[picture], mask=mask, mask_blur=0, width=32,
                                 height=32, steps=20, cfg_scale=7.0, seed=seed, denoising_strength=1.0,
                                 checkpoint="zoo-shapes", save_images=False)
        image = zoo_backend.run(IMG2IMG, request).images[0]
        kept = pixels(mask) == 0
        assert np.array_equal(pixels(image)[kept], pixels(picture)[kept])  # the circle and the rest: untouched
        corner = image.crop((16, 16, 32, 32))
        assert (np.abs(pixels(corner) - 255).sum(axis=2) > 120).sum() >= 40  # a shape, not a speck
        made.append(dominant_colour(corner))
    assert made.count("blue") >= 3, made


def test_zoo_shapes_denoise_0_is_the_picture_within_the_vae_error(zoo_backend):
    circle = red_circle()
    request = Img2ImgRequest(prompt="a red circle", init_images=[circle], width=32, height=32, steps=20,
                             denoising_strength=0.0, checkpoint="zoo-shapes", save_images=False)
    image = zoo_backend.run(IMG2IMG, request).images[0]
    assert np.abs(pixels(image) - pixels(circle)).mean() < 12  # a trained VAE: a close copy
    assert dominant_colour(image) == "red"


# POST /sdapi/v1/img2img -----------------------------------------------------------------------------------

def b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def from_b64(text: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(text)))


@pytest.fixture
def client(backend, tmp_path):
    with app_client(backend, tmp_path / "config.json") as client:
        yield client


def a1111_img2img_payload(image: Image.Image) -> dict:
    """A1111's own test_img2img.py request (its test/ folder), with our tiny checkpoint."""
    return {"batch_size": 1, "cfg_scale": 7, "denoising_strength": 0.75, "eta": 0, "height": 64,
            "include_init_images": False, "init_images": [b64(image)], "inpaint_full_res": False,
            "inpaint_full_res_padding": 0, "inpainting_fill": 0, "inpainting_mask_invert": False, "mask": None,
            "mask_blur": 4, "n_iter": 1, "negative_prompt": "", "override_settings": {"sd_model_checkpoint":
            "tiny-sd15"}, "prompt": "example prompt", "resize_mode": 0, "restore_faces": False, "s_churn": 0,
            "s_noise": 1, "s_tmax": 0, "s_tmin": 0, "sampler_index": "Euler a", "seed": 5, "seed_resize_from_h": -1,
            "seed_resize_from_w": -1, "steps": 3, "styles": [], "subseed": -1, "subseed_strength": 0,
            "tiling": False, "width": 64}


def test_the_route_answers_a1111s_request_with_its_shapes(client):
    mask = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(mask).rectangle((16, 16, 47, 47), fill=255)
    for extra in ({}, {"mask": b64(mask)}, {"mask": b64(mask), "inpainting_mask_invert": True}):
        answer = client.post("/sdapi/v1/img2img", json={**a1111_img2img_payload(noise_picture(4)), **extra,
                                                        "task_id": None})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        image = from_b64(body["images"][0])
        assert image.size == (64, 64)
        fields = parse_infotext(image.info["parameters"])
        assert fields["Denoising strength"] == "0.75" and fields["Sampler"] == "Euler"  # eta 0: no added noise
        assert body["parameters"]["init_images"] is None  # include_init_images false: not echoed
        info = __import__("json").loads(body["info"])
        assert info["denoising_strength"] == 0.75 and info["task_state"] == "done"


@pytest.mark.parametrize("field,value", [("denoising_strength", 2), ("resize_mode", 7), ("init_images", ["%%%"]),
                                         ("mask", "not-base64!"), ("inpainting_fill", 5), ("mask_blur", -3),
                                         ("init_images", []), ("restore_faces", True), ("enable_hr", True)])
def test_a_bad_field_is_a_422_naming_it(client, field, value):
    answer = client.post("/sdapi/v1/img2img", json={**a1111_img2img_payload(noise_picture(5)), field: value})
    assert answer.status_code == 422, answer.text
    assert field in answer.json()["detail"]


def test_mask_blur_x_and_y_equal_are_the_mask_blur(client):
    mask = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(mask).rectangle((16, 16, 47, 47), fill=255)
    body = {**a1111_img2img_payload(noise_picture(6)), "mask": b64(mask), "mask_blur": None}
    answers = [client.post("/sdapi/v1/img2img", json={**body, "mask_blur_x": blur, "mask_blur_y": blur}).json()
               for blur in (0, 8)]
    blurs = [parse_infotext(from_b64(a["images"][0]).info["parameters"])["Mask blur"] for a in answers]
    assert blurs == ["0", "8"]


@pytest.mark.parametrize("checkpoint", ["tiny-sd15-single", "tiny-sdxl", "tiny-sdxl-single"])
def test_img2img_and_inpaint_work_on_every_family_and_layout(backend, request_for, checkpoint):
    init = noise_picture(8)
    kept = backend.run(IMG2IMG, request_for(checkpoint=checkpoint, init_images=[init], denoising_strength=0.0))
    assert np.abs(pixels(kept.images[0]) - pixels(round_trip(backend, init, checkpoint))).max() <= 1
    mask = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(mask).rectangle((0, 0, 31, 63), fill=255)
    painted = backend.run(IMG2IMG, request_for(checkpoint=checkpoint, init_images=[init], mask=mask, mask_blur=0))
    difference = np.abs(pixels(painted.images[0]) - pixels(init)).max(axis=2)
    assert (difference[:, 32:] == 0).all() and difference[:, :32].mean() > 10
    assert f"Model: {checkpoint}," in painted.infotexts[0]


def test_an_interrupt_before_the_start_gives_no_image_and_keeps_the_cached_pipeline(backend, request_for):
    job = backend.new_job("img2img")
    job.interrupt()
    result = backend.run(IMG2IMG, request_for(), job)
    assert result.images == [] and job.state == "interrupted"
    after = backend.run(IMG2IMG, request_for(denoising_strength=0.5))  # the next job runs as usual
    assert len(after.images) == 1
    with backend.manager.use("tiny-sd15") as model:
        assert type(model.pipe).__name__ == "StableDiffusionPipeline"


def test_latent_upscale_takes_pictures_of_any_size_in_one_batch(backend, request_for):
    result = backend.run(IMG2IMG, request_for(init_images=[noise_picture(9, (32, 32)), noise_picture(10, (48, 24))],
                                              resize_mode=3, batch_size=2, width=64, height=64))
    first = result.index_of_first_image
    assert [image.size for image in result.images[first:]] == [(64, 64), (64, 64)]


def test_live_preview_during_the_steps_run(backend, request_for):
    job = backend.new_job("img2img")
    seen = []
    original = job.set_preview
    job.set_preview = lambda image: (seen.append(image.size), original(image))
    backend.run(IMG2IMG, request_for(steps=22, denoising_strength=0.5), job)  # 11 steps run
    assert seen == [(64, 64), (64, 64)]  # after steps 5 and 10


def test_a_half_precision_vae_that_overflows_encodes_in_fp32(backend):
    from modules.models.precision_copy import fp32_copy

    with backend.manager.use("tiny-sd15") as model:
        half = fp32_copy(model.pipe.vae).to(torch.float16)  # a copy: the cached VAE is never changed
        original = half.encoder.forward

        def overflowing(x):  # what an fp16 SDXL VAE does on some pictures
            return original(x) * float("inf")
        half.encoder.forward = overflowing
        latents = encode(half, [noise_picture(11)], "cpu")
        assert torch.isfinite(latents).all()
        expected = encode(model.pipe.vae, [noise_picture(11)], "cpu")
        assert torch.allclose(latents, expected, atol=1e-2)


def test_no_progress_bar_in_the_servers_console(backend, request_for, capfd):
    backend.run(IMG2IMG, request_for(denoising_strength=0.5))
    backend.run(IMG2IMG, request_for(mask=Image.new("L", (64, 64), 255)))
    captured = capfd.readouterr()
    assert "it/s" not in captured.err + captured.out
