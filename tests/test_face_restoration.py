"""Face restoration (A1111's Restore faces): OpenCV's cascades find the faces, each is aligned to GFPGAN's
512 px template, restored and pasted back; through txt2img and img2img of the real API app."""
from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from modules.faces import restore_faces
from modules.faces.detect import find_faces
from modules.faces.restore import SIZE, TEMPLATE_EYES, similarity
from tests.face_fixtures import face_picture, gfpgan_file  # noqa: F401 - fixture
from tests.inprocess_app import make_app


def square_outline(face, shape) -> np.ndarray:
    """Where the face's aligned 512 px square lands in the picture (True inside its bounding box)."""
    forward = similarity(np.array([face.left_eye, face.right_eye]), TEMPLATE_EYES)
    inverse = np.linalg.inv(np.vstack([forward, [0, 0, 1]]))[:2]
    corners = np.array([[0, 0, 1], [SIZE, 0, 1], [0, SIZE, 1], [SIZE, SIZE, 1]]) @ inverse.T
    inside = np.zeros(shape[:2], bool)
    x0, y0 = np.floor(corners.min(0)).astype(int)
    x1, y1 = np.ceil(corners.max(0)).astype(int)
    inside[max(0, y0):y1 + 1, max(0, x0):x1 + 1] = True
    return inside


def test_the_drawn_face_is_found_with_its_eyes_level_and_apart():
    faces = find_faces(np.asarray(face_picture()))
    assert len(faces) == 1
    (lx, ly), (rx, ry) = faces[0].left_eye, faces[0].right_eye
    assert 60 < lx < 128 < rx < 196 and abs(ly - ry) < 10 and 80 < ly < 130


def test_a_picture_without_a_face_comes_back_unchanged_and_the_model_never_runs():
    picture = Image.new("RGB", (96, 64), (200, 30, 30))
    calls = []
    out, count = restore_faces(picture, lambda x: calls.append(x) or x)
    assert count == 0 and calls == [] and out is picture


def test_only_the_faces_square_changes():
    picture = face_picture()
    out, count = restore_faces(picture, lambda x: -x)  # a "restorer" that inverts colours: easy to see
    assert count == 1 and out.size == picture.size
    before, after = np.asarray(picture).astype(int), np.asarray(out).astype(int)
    inside = square_outline(find_faces(before.astype(np.uint8))[0], before.shape)
    assert not inside.all()
    assert (after[~inside] == before[~inside]).all()  # outside the face's square: exactly the same pixels
    middle = slice(110, 150)
    assert np.abs(after[middle, middle] - (255 - before[middle, middle])).mean() < 8  # the face: inverted


def test_an_identity_restorer_gives_the_picture_back():
    picture = face_picture()
    out, _ = restore_faces(picture, lambda x: x)
    difference = np.abs(np.asarray(out).astype(int) - np.asarray(picture).astype(int))
    assert difference.mean() < 1 and difference.max() < 40  # only the warp's interpolation, twice


def test_a_gfpgan_file_loads_through_spandrel_and_restores_the_face(gfpgan_file):  # noqa: F811
    from contextlib import nullcontext
    from types import SimpleNamespace

    from modules.capabilities.face_restore_step import restored
    from modules.capabilities.txt2img.request import Txt2ImgRequest
    from modules.models.face_restorer_files import FaceRestorerFiles, load_face_restorer

    files = FaceRestorerFiles([gfpgan_file.parent])
    assert files.available() == ["GFPGAN"]
    model = load_face_restorer(files.restorer("GFPGAN").path)
    manager = SimpleNamespace(face_restorer_model=lambda name: nullcontext(model))
    hooks = SimpleNamespace(p=SimpleNamespace(backend=SimpleNamespace(manager=manager)))
    picture = face_picture()
    request = Txt2ImgRequest(restore_faces=True, face_restorer="GFPGAN")
    out = restored(picture, request, hooks, lambda: None)
    before, after = np.asarray(picture).astype(int), np.asarray(out).astype(int)
    inside = square_outline(find_faces(before.astype(np.uint8))[0], before.shape)
    assert (after[~inside] == before[~inside]).all()
    assert np.abs(after[inside] - before[inside]).mean() > 5  # random weights: the face is redrawn
    again = restored(picture, request, hooks, lambda: None)
    assert np.array_equal(np.asarray(again), np.asarray(out))  # fixed decoder noise: the same picture again


def test_a_file_that_is_not_gfpgan_is_refused_by_name(tmp_path):
    from modules.errors import BadModelFile
    from modules.models.face_restorer_files import load_face_restorer
    from tests.upscaler_fixtures import save_safetensors

    path = save_safetensors(tmp_path / "GFPGAN" / "not-a-face-model.safetensors")
    with pytest.raises(BadModelFile, match="not-a-face-model.*ESRGAN.*only GFPGAN"):
        load_face_restorer(path)


# Through the API app ------------------------------------------------------------------------------------------

def _client(backend, config):
    from fastapi.testclient import TestClient

    return TestClient(make_app(backend, config))


@pytest.fixture(scope="module")
def face_client(models_dir, gfpgan_file, tmp_path_factory):  # noqa: F811
    from modules.backend import Backend, BackendConfig
    from modules.devices import device_config

    root = tmp_path_factory.mktemp("face-models")
    (root / "Stable-diffusion").symlink_to(models_dir / "Stable-diffusion", target_is_directory=True)
    (root / "GFPGAN").symlink_to(gfpgan_file.parent, target_is_directory=True)
    work = tmp_path_factory.mktemp("face-work")
    backend = Backend(BackendConfig(models_dir=root, outdir=work / "outputs", cache_dir=work / "cache",
                                    devices=device_config("cpu"), offline=True))
    with _client(backend, work / "config.json") as client:
        yield client


BODY = {"prompt": "a red circle on a white background", "steps": 3, "width": 64, "height": 64, "seed": 7,
        "sampler_name": "Euler", "override_settings": {"sd_model_checkpoint": "tiny-sd15"}}


def picture_of(answer) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(answer.json()["images"][0])))


def test_face_restorers_lists_gfpgan_when_its_folder_holds_a_file(face_client):
    answer = face_client.get("/sdapi/v1/face-restorers")
    assert answer.status_code == 200 and [r["name"] for r in answer.json()] == ["GFPGAN"]


def test_txt2img_with_restore_faces_records_it_and_leaves_a_faceless_picture_alone(face_client):
    plain = face_client.post("/sdapi/v1/txt2img", json=BODY)
    restored = face_client.post("/sdapi/v1/txt2img", json={**BODY, "restore_faces": True})
    assert restored.status_code == 200, restored.text
    info = json.loads(restored.json()["info"])
    assert info["restore_faces"] is True and info["face_restoration_model"] == "GFPGAN"
    assert "Face restoration: GFPGAN" in info["infotexts"][0]
    assert "Face restoration" not in json.loads(plain.json()["info"])["infotexts"][0]
    assert picture_of(restored).info["parameters"] == info["infotexts"][0]
    # No face in a 64 px tiny-model picture: A1111 leaves it as it is, so do we (pixel for pixel).
    assert np.array_equal(np.asarray(picture_of(plain)), np.asarray(picture_of(restored)))


def test_img2img_with_restore_faces_records_it(face_client):
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (250, 250, 250)).save(buffer, "PNG")
    body = {**BODY, "init_images": [base64.b64encode(buffer.getvalue()).decode()], "denoising_strength": 0.5,
            "restore_faces": True}
    answer = face_client.post("/sdapi/v1/img2img", json=body)
    assert answer.status_code == 200, answer.text
    assert "Face restoration: GFPGAN" in json.loads(answer.json()["info"])["infotexts"][0]


def test_the_option_naming_a_restorer_that_is_not_here_is_a_422(face_client):
    assert face_client.post("/sdapi/v1/options", json={"face_restoration_model": "CodeFormer"}).status_code == 200
    try:
        answer = face_client.post("/sdapi/v1/txt2img", json={**BODY, "restore_faces": True})
        assert answer.status_code == 422 and "restore_faces" in answer.json()["detail"]
        assert "CodeFormer" in answer.json()["detail"]
    finally:
        face_client.post("/sdapi/v1/options", json={"face_restoration_model": None})


def test_without_a_model_file_restore_faces_is_a_422_saying_where_to_put_one(backend, tmp_path):
    with _client(backend, tmp_path / "config.json") as client:
        assert client.get("/sdapi/v1/face-restorers").json() == []
        answer = client.post("/sdapi/v1/txt2img", json={**BODY, "restore_faces": True})
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert detail.startswith("restore_faces:") and "GFPGAN" in detail and "models" in detail


def test_extras_gfpgan_visibility_restores_the_face_and_nothing_else(face_client):
    picture = face_picture()
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    answer = face_client.post("/sdapi/v1/extra-single-image", json={
        "image": base64.b64encode(buffer.getvalue()).decode(), "upscaling_resize": 1, "gfpgan_visibility": 0.5})
    assert answer.status_code == 200, answer.text
    assert "GFPGAN visibility: 0.5" in answer.json()["html_info"]
    out = Image.open(io.BytesIO(base64.b64decode(answer.json()["image"])))
    before, after = np.asarray(picture).astype(int), np.asarray(out.convert("RGB")).astype(int)
    assert after.shape == before.shape
    inside = square_outline(find_faces(before.astype(np.uint8))[0], before.shape)
    assert (after[~inside] == before[~inside]).all()
    assert np.abs(after[inside] - before[inside]).mean() > 2


def test_gfpgan_is_an_entry_of_the_one_cache_with_its_bytes_and_read_once(face_client, monkeypatch):
    from modules.models import manager as manager_module

    reads, real = [], manager_module.load_face_restorer
    monkeypatch.setattr(manager_module, "load_face_restorer", lambda path: (reads.append(path.name), real(path))[1])
    buffer = io.BytesIO()
    face_picture().save(buffer, "PNG")
    body = {"image": base64.b64encode(buffer.getvalue()).decode(), "upscaling_resize": 1, "gfpgan_visibility": 1}
    for _ in range(2):
        assert face_client.post("/sdapi/v1/extra-single-image", json=body).status_code == 200
    answer = face_client.get("/zoo/v1/models/cached").json()
    (row,) = [m for m in answer["models"] if m["kind"] == "face_restorer"]
    assert row["title"] == "GFPGAN (GFPGANv1.4-random.safetensors)" and row["architecture"] == "GFPGAN"
    assert row["bytes"] > 300 * 1024 ** 2 and not row["in_use"]  # v1.4's 350 MB, counted in the budget
    assert answer["ram_bytes"] == sum(m["bytes"] for m in answer["models"])
    assert len(reads) <= 1  # read by the earlier test's job, or by the first of these two: never again


def test_extras_codeformer_is_refused_naming_it(face_client):
    buffer = io.BytesIO()
    face_picture(64).save(buffer, "PNG")
    answer = face_client.post("/sdapi/v1/extra-single-image", json={
        "image": base64.b64encode(buffer.getvalue()).decode(), "codeformer_visibility": 1})
    assert answer.status_code == 422 and answer.json()["detail"].startswith("codeformer_visibility:")


def test_the_face_restoration_setting_applies_to_jobs_that_do_not_say(face_client):
    assert face_client.post("/sdapi/v1/options", json={"face_restoration": True}).status_code == 200
    try:
        silent = face_client.post("/sdapi/v1/txt2img", json=BODY)
        refusing = face_client.post("/sdapi/v1/txt2img", json={**BODY, "restore_faces": False})
    finally:
        face_client.post("/sdapi/v1/options", json={"face_restoration": False})
    assert "Face restoration: GFPGAN" in json.loads(silent.json()["info"])["infotexts"][0]
    assert "Face restoration" not in json.loads(refusing.json()["info"])["infotexts"][0]
