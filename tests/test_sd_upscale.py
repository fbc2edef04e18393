"""The built-in SD upscale script (img2img, A1111's title and script_args): the picture is the input × the scale
factor, every tile is redrawn and counted in the progress, overlaps blend without seams, and bad values or a
job over the limits are refused naming script_args before anything runs."""
from __future__ import annotations

import importlib.util
import shutil
import sys

import numpy as np
import pytest
from PIL import Image, ImageDraw

from modules.capabilities.img2img import IMG2IMG, Img2ImgRequest
from modules.errors import InvalidRequest
from modules.extensions import ScriptCall
from modules.generation.infotext import parse_infotext
from tests.test_extensions_fixtures import REPO_EXTENSIONS, attach_extensions  # noqa: F401 - a fixture
from tests.test_img2img import a1111_img2img_payload, client, from_b64, noise_picture, pixels, zoo_backend  # noqa: F401


def load_tiles():
    spec = importlib.util.spec_from_file_location("sd_upscale_test_tiles", REPO_EXTENSIONS / "sd_upscale" / "tiles.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


tiles = load_tiles()


@pytest.fixture
def with_sd_upscale(tmp_path, attach_extensions):
    shutil.copytree(REPO_EXTENSIONS / "sd_upscale", tmp_path / "ext" / "sd_upscale",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return attach_extensions(tmp_path / "ext")


def sd_upscale(overlap=8, upscaler="Lanczos", scale=2.0) -> ScriptCall:
    return ScriptCall("SD upscale", ["", overlap, upscaler, scale])


def upscale_request(**overrides) -> Img2ImgRequest:
    values = dict(prompt="a red circle", steps=4, width=64, height=64, seed=7, checkpoint="tiny-sd15",
                  init_images=[noise_picture(3)], denoising_strength=0.5, save_images=False)
    return Img2ImgRequest(**{**values, **overrides})


# Tiles and blending -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("length,tile,overlap,expected", [
    (128, 64, 8, [0, 32, 64]), (64, 64, 8, [0]), (40, 64, 8, [0]), (120, 64, 8, [0, 56]), (300, 128, 32, [0, 86, 172]),
])
def test_tiles_cover_the_picture_and_overlap_at_least_as_asked(length, tile, overlap, expected):
    starts = tiles.positions(length, tile, overlap)
    assert starts == expected
    assert starts[-1] + tile >= length
    assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))


def test_tiles_blended_back_unchanged_are_the_picture():
    picture = noise_picture(9, (150, 100))
    assert np.array_equal(pixels(tiles.blend(tiles.split(picture, 64, 48, 16), picture.size)), pixels(picture))


def test_overlaps_cross_fade_so_no_seam_is_larger_than_a_ramp_step():
    """Each tile redrawn as one flat colour, neighbours far apart: the blend steps at most 255 / overlap."""
    picture = Image.new("RGB", (200, 160))
    pieces = tiles.split(picture, 64, 64, 32)
    colours = {(t.x, t.y): (0 if (i % 2) else 240) for i, t in enumerate(pieces)}
    redrawn = [tiles.Tile(t.x, t.y, Image.new("RGB", (64, 64), (colours[t.x, t.y],) * 3)) for t in pieces]
    blended = pixels(tiles.blend(redrawn, picture.size))[..., 0]
    assert np.abs(np.diff(blended, axis=1)).max() <= 240 / 32 + 1
    assert np.abs(np.diff(blended, axis=0)).max() <= 240 / 32 + 1
    assert blended.max() - blended.min() >= 200  # the tiles' own colours still show


# The script in a job ----------------------------------------------------------------------------------------

def test_the_picture_is_the_input_times_the_scale_and_every_tile_is_redrawn(backend, with_sd_upscale):
    job = backend.new_job("img2img")
    result = backend.run(IMG2IMG, upscale_request(), job=job, scripts=sd_upscale(overlap=8, scale=2.0))
    assert [image.size for image in result.images] == [(128, 128)]
    assert job.batch_count == 9 and job.state == "done"  # 3 × 3 tiles of 64 px over 128 px, overlap ≥ 8
    fields = parse_infotext(result.infotexts[0])
    assert fields["SD upscale overlap"] == "8" and fields["SD upscale upscaler"] == "Lanczos"
    assert fields["Denoising strength"] == "0.5"
    assert result.info()["width"] == 128
    plain = backend.run(IMG2IMG, upscale_request(init_images=[result.images[0].crop((0, 0, 64, 64))]))
    assert plain.images[0].size == (64, 64)  # the script changed nothing for the next job


def test_a_picture_smaller_than_a_tile_and_an_odd_scale_keep_the_asked_size(backend, with_sd_upscale):
    request = upscale_request(init_images=[noise_picture(4, (48, 40))], batch_size=2, batch_count=2)
    job = backend.new_job("img2img")
    result = backend.run(IMG2IMG, request, job=job, scripts=sd_upscale(overlap=16, upscaler=1, scale=1.5))
    assert [image.size for image in result.images[result.index_of_first_image:]] == [(72, 60), (72, 60)]
    assert job.batch_count == 2 * 1  # 2 tiles across (72 > 64), 1 down (60 padded to 64), 2 a batch; 2 pictures
    first, second = result.seeds[result.index_of_first_image:]
    assert second == first + 2  # each picture's tiles take the next seeds


@pytest.fixture
def zoo_with_sd_upscale(zoo_backend, tmp_path):
    from modules.extensions import Extensions

    shutil.copytree(REPO_EXTENSIONS / "sd_upscale", tmp_path / "ext" / "sd_upscale",
                    ignore=shutil.ignore_patterns("__pycache__"))
    before = zoo_backend.extensions
    Extensions.load_from(tmp_path / "ext", tmp_path / "extensions-state.json").attach(zoo_backend)
    yield zoo_backend
    zoo_backend.extensions = before


def test_tile_borders_leave_no_seam_on_a_trained_model(zoo_with_sd_upscale):
    """zoo-shapes at denoise 0: each tile is the upscale through a trained VAE, which is off at a tile's
    edges; pasted side by side that makes seams of 35-60 levels, blended none over 25."""
    circle = Image.new("RGB", (48, 48), (255, 255, 255))
    ImageDraw.Draw(circle).ellipse((6, 6, 41, 41), fill=(230, 20, 20))
    request = Img2ImgRequest(prompt="a red circle", init_images=[circle], width=32, height=32, steps=20, seed=1,
                             denoising_strength=0.0, checkpoint="zoo-shapes", save_images=False)
    image = pixels(zoo_with_sd_upscale.run(IMG2IMG, request, scripts=sd_upscale(overlap=8, scale=2.0)).images[0])
    assert image.shape == (96, 96, 3)
    borders = [start - 1 for start in tiles.positions(96, 32, 8)[1:]]  # the last pixel before each new tile
    assert len(borders) == 3
    across = np.abs(np.diff(image.astype(float), axis=1)).mean(axis=(0, 2))
    down = np.abs(np.diff(image.astype(float), axis=0)).mean(axis=(1, 2))
    assert across[borders].max() <= 25 and down[borders].max() <= 25, (across[borders], down[borders])
    assert np.abs(image - pixels(circle.resize((96, 96), Image.LANCZOS))).mean() < 40  # still the circle


def test_an_interrupt_between_tiles_stops_the_job_without_a_half_made_picture(backend, with_sd_upscale):
    job = backend.new_job("img2img")
    started = []
    begin = job.begin_batch

    def begin_and_interrupt_at_the_second_tile(index):
        begin(index)
        started.append(index)
        if index == 1:
            job.interrupt()

    job.begin_batch = begin_and_interrupt_at_the_second_tile
    result = backend.run(IMG2IMG, upscale_request(), job=job, scripts=sd_upscale(overlap=8, scale=2.0))
    assert result.images == [] and started == [0, 1] and job.state == "interrupted"


@pytest.mark.parametrize("args,message", [
    (["", 8, "Lanczos", 9.0], "scale factor"), (["", 8, 99, 2.0], "upscaler"), (["", 8, "Bicubic9000", 2.0], "upscaler"),
    (["", -1, "Lanczos", 2.0], "tile overlap"), (["", 64, "Lanczos", 2.0], "smaller than a tile"),
    (["", "x", "Lanczos", 2.0], "tile overlap"),
])
def test_bad_values_are_refused_naming_script_args(backend, with_sd_upscale, args, message):
    job = backend.new_job("img2img")
    with pytest.raises(InvalidRequest, match=f"script_args: .*{message}"):
        backend.run(IMG2IMG, upscale_request(), job=job, scripts=ScriptCall("SD upscale", args))
    assert job.state == "failed"


def test_a_job_over_the_grid_limit_is_refused_before_the_upscale(backend, with_sd_upscale):
    big = noise_picture(5, (512, 512))
    with pytest.raises(InvalidRequest, match=r"script_args: \d+ tiles to redraw, over"):
        backend.run(IMG2IMG, upscale_request(init_images=[big]), scripts=sd_upscale(overlap=8, scale=4.0))


def test_a_mask_is_refused(backend, with_sd_upscale):
    with pytest.raises(InvalidRequest, match="mask: SD upscale"):
        backend.run(IMG2IMG, upscale_request(mask=Image.new("L", (64, 64), 255)), scripts=sd_upscale())


# Through A1111's API ----------------------------------------------------------------------------------------

def test_a1111s_sd_upscale_request_answers_with_the_larger_picture(client, with_sd_upscale):
    body = {**a1111_img2img_payload(noise_picture(6)), "script_name": "sd upscale",
            "script_args": ["", 8, "Lanczos", 2.0]}
    answer = client.post("/sdapi/v1/img2img", json=body)
    assert answer.status_code == 200, answer.text
    image = from_b64(answer.json()["images"][0])
    assert image.size == (128, 128)
    assert parse_infotext(image.info["parameters"])["SD upscale upscaler"] == "Lanczos"
    assert "sd upscale" in client.get("/sdapi/v1/scripts").json()["img2img"]
    info = [s for s in client.get("/sdapi/v1/script-info").json() if s["name"] == "sd upscale"]
    assert info[0]["is_img2img"] and [a["label"] for a in info[0]["args"]][1:] == ["Tile overlap", "Upscaler",
                                                                                  "Scale Factor"]


def test_a_bad_script_arg_is_a_422_naming_script_args(client, with_sd_upscale):
    body = {**a1111_img2img_payload(noise_picture(7)), "script_name": "SD upscale",
            "script_args": ["", 8, "Lanczos", 40]}
    answer = client.post("/sdapi/v1/img2img", json=body)
    assert answer.status_code == 422, answer.text
    assert "script_args" in answer.json()["detail"]


# From the img2img tab (gradio_client: the same handler as the Script dropdown) -------------------------------

@pytest.fixture(scope="module")
def app(models_dir, tmp_path_factory):
    from tests.app_process import AppProcess

    outdir = tmp_path_factory.mktemp("sd-upscale-outputs")
    with AppProcess("--models-dir", str(models_dir), "--outdir", str(outdir), "--skip-load-model-at-start") as app:
        yield app


def test_the_img2img_tab_runs_sd_upscale_from_its_script_controls(app, tmp_path):
    from gradio_client import Client, handle_file

    picture = tmp_path / "noise.png"
    noise_picture(8).save(picture)
    client = Client(app.url, verbose=False)
    gallery, _progress, message, infotext = client.predict(
        checkpoint="tiny-sd15", prompt="a red circle", negative_prompt="", steps=3, width=64, height=64, seed=5,
        init_image=handle_file(str(picture)), inpaint_sketch=None, inpaint_image=None, inpaint_mask=None,
        denoising_strength=0.5, script_name="SD upscale", sd_upscale_tile_overlap=16, sd_upscale_upscaler="Nearest",
        sd_upscale_scale_factor=1.5, api_name="/img2img")
    assert message == ""
    with Image.open(gallery[-1]["image"]) as image:
        assert image.size == (96, 96)
    assert parse_infotext(infotext)["SD upscale upscaler"] == "Nearest"
