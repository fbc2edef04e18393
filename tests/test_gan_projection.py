"""Image -> latent (projection): an image the tiny StyleGAN2 network made from a known seed is found again (its
PSNR climbs well above the start), Interrupt stops between steps keeping the best latent so far, the found latent
renders the same picture in the GAN Sampler and through an exported state, and the REST route needs the login."""
from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from modules.jobs import Job
from tests.stylegan_pickles import write_nvidia_pickle
from tests.inprocess_app import api_client

STEPS = 40
USER, PASSWORD = "alice", "secret-projection"


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    from modules.backend import Backend, BackendConfig
    from modules.devices import device_config

    root = tmp_path_factory.mktemp("projection-models")
    (root / "GAN").mkdir()
    write_nvidia_pickle(root / "GAN" / "sg2.pkl", "sg2")
    work = tmp_path_factory.mktemp("projection-work")
    return Backend(BackendConfig(models_dir=root, outdir=work / "outputs", cache_dir=work / "cache",
                                 devices=device_config("cpu")))


@pytest.fixture(scope="module")
def seed_picture(backend):
    from modules.capabilities.gan import GanRequest, gan
    return backend.run(gan, GanRequest(model="sg2.pkl", seeds="5", save_images=False)).images[0]


@pytest.fixture(scope="module")
def projected(backend, seed_picture):
    from modules.capabilities.gan import GanProjectRequest, gan_project
    return backend.run(gan_project, GanProjectRequest(model="sg2.pkl", image=seed_picture, steps=STEPS, w_plus=True))


def _psnr(a: Image.Image, b: Image.Image) -> float:
    x, y = (np.asarray(i.convert("RGB"), dtype=np.float64) for i in (a, b))
    return 10 * np.log10(255 ** 2 / max(((x - y) ** 2).mean(), 1e-12))


def test_projecting_a_seeds_picture_climbs_well_above_the_start(projected, seed_picture):
    assert projected.steps_done == STEPS and not projected.interrupted
    assert len(projected.psnr) == STEPS and projected.ws.shape == (8, 32)
    start, best = projected.psnr[0], max(projected.psnr)
    assert best >= start + 5 and best >= 11, projected.psnr
    # The returned picture is the best step's, in pixels, not just by the loss.
    assert _psnr(projected.image, seed_picture) >= start + 5


def test_the_found_latent_renders_the_same_picture_in_the_sampler_and_from_its_exported_state(
        backend, projected, tmp_path):
    from modules.capabilities.gan import GanRequest, gan
    from modules.capabilities.gan.state import export_text, read_states, request_from_states

    result = backend.run(gan, GanRequest(model="sg2.pkl", latents=[projected.latent], save_images=False))
    assert np.array_equal(np.asarray(result.images[0]), np.asarray(projected.image))
    assert result.states[0]["z"] is None and len(result.states[0]["w"]) == 8
    assert "Latent: projected" in result.infotexts[0]
    path = tmp_path / "projected.json"
    path.write_text(export_text(result.states), encoding="utf-8")
    again = backend.run(gan, request_from_states(read_states(path), "sg2.pkl"))
    assert np.array_equal(np.asarray(again.images[0]), np.asarray(projected.image))
    # A direction moves it as it moves a seed's picture.
    moved = backend.run(gan, GanRequest(model="sg2.pkl", latents=[projected.latent], save_images=False,
                                        directions=[{"direction": [1.0] + [0.0] * 31, "strength": 5,
                                                     "layers": [0, 8]}]))
    assert not np.array_equal(np.asarray(moved.images[0]), np.asarray(projected.image))


def test_interrupt_stops_between_steps_and_keeps_the_best_latent_so_far(backend, seed_picture):
    from modules.capabilities.gan import GanProjectRequest, gan_project

    class StopAtThree(Job):
        def report_step(self, step: int) -> None:
            if step == 3:
                self.interrupt()
            super().report_step(step)

    job = StopAtThree("gan-project")
    result = backend.runner.run(gan_project, GanProjectRequest(model="sg2.pkl", image=seed_picture, steps=STEPS,
                                                               preview_every=1), job)
    assert result.interrupted and result.steps_done == 3 and result.ws.shape == (8, 32)
    assert job.preview is not None and job.preview_version == 3


def test_the_request_is_bounded_and_names_the_field(backend, seed_picture):
    from modules.capabilities.gan import GanProjectRequest, gan_project
    from modules.errors import InvalidRequest

    for values, field in (({"steps": 0}, "steps"), ({"steps": 100000}, "steps"), ({"image": None}, "image"),
                          ({"learning_rate": 5}, "learning_rate"), ({"class_name": "All classes"}, "class_name")):
        with pytest.raises(InvalidRequest, match=field):
            backend.run(gan_project, GanProjectRequest(**{"model": "sg2.pkl", "image": seed_picture, **values}))


def test_the_rest_route_projects_with_the_login(backend, seed_picture, tmp_path):
    buffer = io.BytesIO()
    seed_picture.save(buffer, format="PNG")
    body = {"model": "sg2.pkl", "image": base64.b64encode(buffer.getvalue()).decode(), "steps": 12}
    with api_client(backend, tmp_path, "--api-auth", f"{USER}:{PASSWORD}") as client:
        assert client.post("/zoo/v1/gan/project", json=body).status_code == 401
        refused = client.post("/zoo/v1/gan/project", json={**body, "steps": 0}, auth=(USER, PASSWORD))
        assert refused.status_code == 422 and "steps" in refused.text
        answer = client.post("/zoo/v1/gan/project", json={**body, "task_id": "proj"}, auth=(USER, PASSWORD))
        assert answer.status_code == 200, answer.text
        data = answer.json()
        assert data["steps_done"] == 12 and len(data["psnr"]) == 12 and max(data["psnr"]) > data["psnr"][0]
        image = Image.open(io.BytesIO(base64.b64decode(data["image"])))
        assert json.loads(image.info["zoo_gan"])["w"] == data["latent"]["w"]
        assert _psnr(image, seed_picture) > data["psnr"][0]
        sample = client.post("/zoo/v1/gan/sample", json={"model": "sg2.pkl", "latents": [data["latent"]]},
                             auth=(USER, PASSWORD))
        assert sample.status_code == 200, sample.text
        again = Image.open(io.BytesIO(base64.b64decode(sample.json()["images"][0])))
        assert np.array_equal(np.asarray(again.convert("RGB")), np.asarray(image.convert("RGB")))
