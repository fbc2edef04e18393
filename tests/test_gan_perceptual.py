"""GAN projection's perceptual (LPIPS, VGG16) loss: used when models/LPIPS holds VGG16 weights (here random,
seeded, in torchvision's layout), and the projection still finds the seed's picture; asked for without the file
it is a 422 naming `loss`; a pickle that would run code in models/LPIPS is refused naming the file, unrun."""
from __future__ import annotations

import base64
import io
import math
import pickle

import pytest
import torch

from tests.stylegan_pickles import write_nvidia_pickle
from tests.inprocess_app import api_client

STEPS = 20


def _backend(root, work):
    from modules.backend import Backend, BackendConfig
    from modules.devices import device_config

    return Backend(BackendConfig(models_dir=root, outdir=work / "outputs", cache_dir=work / "cache",
                                 devices=device_config("cpu")))


def _models(root):
    """A models folder with the tiny StyleGAN2 network (and no LPIPS folder)."""
    (root / "GAN").mkdir(parents=True)
    write_nvidia_pickle(root / "GAN" / "sg2.pkl", "sg2")
    return root


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return _models(tmp_path_factory.mktemp("perceptual-models"))


@pytest.fixture(scope="module")
def vgg_backend(tmp_path_factory):
    from safetensors.torch import save_file

    from modules.models.vgg_features import feature_shapes

    root = _models(tmp_path_factory.mktemp("vgg-models"))
    folder = root / "LPIPS"
    folder.mkdir()
    rng = torch.Generator().manual_seed(0)
    state = {}
    for name, shape in feature_shapes().items():  # He-scaled so the features do not fade layer by layer
        fan_in = math.prod(shape[1:]) if len(shape) == 4 else 1
        state[name] = (torch.randn(shape, generator=rng) * math.sqrt(2 / fan_in) if len(shape) == 4
                       else torch.zeros(shape))
    save_file(state, str(folder / "vgg16.safetensors"))
    return _backend(root, tmp_path_factory.mktemp("perceptual-work"))


@pytest.fixture(scope="module")
def seed_picture(models, tmp_path_factory):
    from modules.capabilities.gan import GanRequest, gan
    backend = _backend(models, tmp_path_factory.mktemp("perceptual-seed"))
    return backend.run(gan, GanRequest(model="sg2.pkl", seeds="5", save_images=False)).images[0]


def test_with_the_vgg_file_auto_projects_with_the_perceptual_loss_and_finds_the_picture(vgg_backend, seed_picture):
    from modules.capabilities.gan import GanProjectRequest, gan_project

    result = vgg_backend.run(gan_project, GanProjectRequest(model="sg2.pkl", image=seed_picture, steps=STEPS,
                                                            w_plus=True))
    assert result.loss == "perceptual" and result.steps_done == STEPS
    assert max(result.psnr) >= result.psnr[0] + 3, result.psnr
    pixels = vgg_backend.run(gan_project, GanProjectRequest(model="sg2.pkl", image=seed_picture, steps=STEPS,
                                                            w_plus=True, loss="pixels"))
    assert pixels.loss == "pixels" and not torch.equal(pixels.ws, result.ws)  # the VGG term changed the path
    both = vgg_backend.run(gan_project, GanProjectRequest(model="sg2.pkl", image=seed_picture, steps=3,
                                                          loss="perceptual+pixels"))
    assert both.loss == "perceptual+pixels"


def test_the_vgg_network_is_an_entry_of_the_one_cache_with_its_bytes_and_read_once(vgg_backend, seed_picture,
                                                                                   monkeypatch):
    from modules.capabilities.gan import GanProjectRequest, gan_project
    from modules.models import manager as manager_module
    from modules.models.memory import module_bytes

    reads, real = [], manager_module.load_perceptual
    monkeypatch.setattr(manager_module, "load_perceptual", lambda files: (reads.append(len(files)), real(files))[1])
    vgg_backend.manager.unload_all()
    for _ in range(2):
        result = vgg_backend.run(gan_project, GanProjectRequest(model="sg2.pkl", image=seed_picture, steps=2))
        assert result.loss == "perceptual"
    assert reads == [1]  # validation read it; both jobs took it from the cache
    (row,) = [m for m in vgg_backend.cached_models() if m["kind"] == "lpips"]
    with vgg_backend.manager.perceptual_model() as network:
        assert row["bytes"] == module_bytes(network) > 50 * 1024 ** 2  # VGG16 up to relu5_3: 59 MB in float32
    assert row["architecture"] == "VGG16 (LPIPS)" and not row["in_use"]
    totals = vgg_backend.cache_totals()
    assert totals["ram_bytes"] == sum(m["bytes"] for m in vgg_backend.cached_models())


def _body(picture, **fields):
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return {"model": "sg2.pkl", "image": base64.b64encode(buffer.getvalue()).decode(), "steps": 2, **fields}


def test_perceptual_without_the_file_is_a_422_naming_loss_and_auto_uses_pixels(models, seed_picture, tmp_path):
    backend = _backend(models, tmp_path)
    with api_client(backend, tmp_path) as client:
        refused = client.post("/zoo/v1/gan/project", json=_body(seed_picture, loss="perceptual"))
        assert refused.status_code == 422 and "loss" in refused.text and "LPIPS" in refused.text
        unknown = client.post("/zoo/v1/gan/project", json=_body(seed_picture, loss="ssim"))
        assert unknown.status_code == 422 and "loss" in unknown.text
        answer = client.post("/zoo/v1/gan/project", json=_body(seed_picture))
        assert answer.status_code == 200 and answer.json()["loss"] == "pixels"


class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))  # would create the marker file if anything unpickled it with code


def test_a_pickle_with_code_in_models_lpips_is_refused_naming_it_and_nothing_runs(seed_picture, tmp_path):
    from modules.capabilities.gan import GanProjectRequest, gan_project
    from modules.errors import BadModelFile

    root = _models(tmp_path / "models")
    (root / "LPIPS").mkdir()
    marker = tmp_path / "ran"
    with open(root / "LPIPS" / "vgg16.pth", "wb") as f:
        pickle.dump({"features.0.weight": _Payload(marker)}, f)
    backend = _backend(root, tmp_path / "work")
    with pytest.raises(BadModelFile, match="vgg16.pth"):
        backend.run(gan_project, GanProjectRequest(model="sg2.pkl", image=seed_picture, steps=2))
    assert not marker.exists()


def test_lpips_lin_weights_from_a_second_file_weight_the_channels_and_a_foreign_file_is_refused(tmp_path):
    from safetensors.torch import save_file

    from modules.errors import BadModelFile
    from modules.models.lpips_files import LpipsFiles, load_perceptual
    from modules.models.vgg_features import feature_shapes, lin_shapes

    rng = torch.Generator().manual_seed(1)
    save_file({k: torch.randn(s, generator=rng) * 0.1 for k, s in feature_shapes().items()},
              str(tmp_path / "vgg16.safetensors"))
    files = LpipsFiles([tmp_path])
    plain = load_perceptual(files.scan())
    assert not plain.use_lin
    lins = {k: torch.zeros(s) for k, s in lin_shapes().items()}
    lins["lin0.model.1.weight"][0, 3] = 2.0  # only channel 3 of relu1_2 counts
    torch.save(lins, tmp_path / "vgg.pth")
    weighted = load_perceptual(files.scan())  # a new file in the folder: read too
    assert weighted.use_lin and weighted is not plain
    x, y = torch.rand(1, 3, 16, 16) * 2 - 1, torch.rand(1, 3, 16, 16) * 2 - 1
    tx, ty = weighted.taps(x), weighted.taps(y)
    expected = 2 * ((tx[0][:, 3] - ty[0][:, 3]) ** 2).mean()
    assert torch.allclose(weighted.distance(x, ty), expected[None]) and float(expected) > 0
    torch.save({"conv.weight": torch.zeros(2, 2)}, tmp_path / "other.pt")
    with pytest.raises(BadModelFile, match="other.pt"):
        load_perceptual(files.scan())
