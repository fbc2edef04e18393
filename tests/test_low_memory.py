"""Low memory on FLUX.1 and SD 3/3.5: fp8 files and the fp8_storage option (weights kept in fp8, computed in the
compute dtype), GGUF-quantised transformers completed by component files, --medvram/--lowvram, and the listings
that show how each component is stored and what it takes — end to end on tiny random-weight models."""
from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from tests import gguf_fixtures, tiny_flow_models
from tests.convert_to_single_file import vae_to_original
from tests.inprocess_app import api_client

CLOSE_PSNR = 30.0  # dB: what "the same picture, slightly different" means here (tiny random weights)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """FLUX dev and SD3 folders (the references); BFL's transformer-only file and the VAE / CLIP-L / T5 files
    beside it; the same transformer as an fp8 file, as a whole fp8 checkpoint (ComfyUI's flux1-dev-fp8) and as
    GGUF Q8_0 / Q4_0 files in models/unet; SD 3.5's GGUF with clip_l / clip_g / t5xxl and a VAE file."""
    models = tmp_path_factory.mktemp("low-memory") / "models"
    sd, unet = models / "Stable-diffusion", models / "unet"
    flux = tiny_flow_models.make_tiny_flux(sd / "tiny-flux-dev")
    files = tiny_flow_models.make_flux_component_files(flux, models, name="flux1-tiny")
    parts = tiny_flow_models.flux_file_parts(flux)
    fp8 = {k: v.to(torch.float8_e4m3fn) if v.ndim == 2 else v for k, v in parts["transformer"].items()}
    tiny_flow_models.sidecar(flux, tiny_flow_models._save(fp8, unet / "flux1-tiny-fp8.safetensors"))
    whole = {"model.diffusion_model." + k: v for k, v in fp8.items()}
    whole.update({"vae." + k: v for k, v in parts["vae"].items()})
    whole.update({"text_encoders.clip_l.transformer." + k: v for k, v in parts["clip_l"].items()})
    whole.update({"text_encoders.t5xxl.transformer." + k: v for k, v in parts["t5xxl"].items()})
    tiny_flow_models.sidecar(flux, tiny_flow_models._save(whole, sd / "flux1-tiny-whole-fp8.safetensors"))
    for quant in ("Q8_0", "Q4_0"):
        path = gguf_fixtures.write_gguf(parts["transformer"], unet / f"flux1-tiny-{quant}.gguf", quant)
        tiny_flow_models.sidecar(flux, path)

    from diffusers import StableDiffusion3Pipeline

    sd3 = tiny_flow_models.make_tiny_sd3(sd / "tiny-sd3")
    sd35 = tiny_flow_models.make_sd35_style_files(sd3, models)
    pipe = StableDiffusion3Pipeline.from_pretrained(str(sd3), local_files_only=True)
    transformer = tiny_flow_models.sd3_transformer_to_original(pipe.transformer.state_dict(),
                                                               pipe.transformer.config.num_layers)
    path = gguf_fixtures.write_gguf(transformer, sd / "sd35-tiny-Q8_0.gguf", "Q8_0", arch="sd3")  # either folder
    tiny_flow_models.sidecar(sd3, path)
    tiny_flow_models._save(vae_to_original(pipe.vae.state_dict()), models / "VAE" / "sd35-tiny-vae.safetensors")
    for sub in ("VAE", "Latent", "GAN", "text_encoder"):
        (models / sub).mkdir(exist_ok=True)
    return {"dir": models,
            "flux_modules": [files["vae"].name, files["clip_l"].name, files["t5xxl"].name],
            "sd3_modules": ["sd35-tiny-vae.safetensors", sd35["clip_l"].name, sd35["clip_g"].name, sd35["t5xxl"].name]}


def make_backend(models, tmp_path, offload: str = "none", dtype=torch.float32):
    from modules.backend import Backend, BackendConfig
    from modules.devices import DeviceConfig

    # On this CPU machine the "device" is the CPU; with offload forced the hooks still run and move weights.
    devices = DeviceConfig(torch.device("cpu"), dtype, dtype, offload)
    return Backend(BackendConfig(models_dir=models["dir"], outdir=tmp_path / f"out-{offload}",
                                 cache_dir=tmp_path / "cache", devices=devices, offline=True))


@pytest.fixture(scope="module")
def backend(models, tmp_path_factory):
    return make_backend(models, tmp_path_factory.mktemp("low-memory-backend"))


def generate(backend, checkpoint: str, modules=(), seed: int = 11, cfg_scale: float = 1.0) -> np.ndarray:
    from modules.capabilities.txt2img.request import Txt2ImgRequest

    result = backend.txt2img(Txt2ImgRequest(prompt="a red circle on a white background", steps=3, width=64,
                                            height=64, seed=seed, sampler="Euler", cfg_scale=cfg_scale,
                                            save_images=False, checkpoint=checkpoint,
                                            forge_additional_modules=list(modules)))
    pixels = np.asarray(result.images[0], dtype=np.uint8)
    assert pixels.shape == (64, 64, 3) and pixels.std() > 0
    return pixels


def transformer_row(backend, title_start: str) -> dict:
    row = next(r for r in backend.cached_models() if r["title"].startswith(title_start))
    return next(c for c in row["components"] if c["name"] == "transformer")


def test_fp8_and_gguf_files_are_detected_from_their_tensors(backend):
    infos = {c.name: c for c in backend.registry.checkpoints}
    assert infos["flux1-tiny-fp8.safetensors"].stored_as == "float8_e4m3fn"
    assert infos["flux1-tiny-whole-fp8.safetensors"].stored_as == "float8_e4m3fn"  # its VAE and CLIP are fp32
    assert infos["flux1-tiny.safetensors"].stored_as is None
    for name, stored, label in (("flux1-tiny-Q8_0.gguf", "GGUF Q8_0", "FLUX.1 dev"),
                                ("flux1-tiny-Q4_0.gguf", "GGUF Q4_0", "FLUX.1 dev"),
                                ("sd35-tiny-Q8_0.gguf", "GGUF Q8_0", "SD 3/3.5")):
        info = infos[name]
        assert info.usable, info.error
        assert (info.stored_as, info.architecture.label) == (stored, label)
        assert "VAE" in info.architecture.missing_labels()  # a GGUF file is a transformer alone


def test_a_scaled_fp8_file_is_refused_naming_its_scales(models, tmp_path):
    """ComfyUI's fp8_scaled files (sd3.5_large_fp8_scaled) hold a scale per weight: read without them, every
    weight would be wrong, so such a file is listed as unusable with the reason."""
    from safetensors.torch import load_file, save_file

    from modules.models.hashing import HashCache
    from modules.models.registry import Registry

    state = load_file(str(models["dir"] / "unet" / "flux1-tiny-fp8.safetensors"))
    state["double_blocks.0.img_attn.qkv.scale_weight"] = torch.ones(1)
    state["scaled_fp8"] = torch.zeros(0, dtype=torch.float8_e4m3fn)
    save_file(state, str(tmp_path / "flux-fp8-scaled.safetensors"))
    info = Registry([tmp_path], HashCache(tmp_path / "hashes.json")).scan()[0]
    assert not info.usable and "scaled fp8 file" in info.error and "fp8_scaled" in info.error


def test_an_fp8_file_is_kept_in_fp8_and_makes_nearly_the_full_precision_picture(backend, models):
    reference = generate(backend, "tiny-flux-dev")
    fp8 = generate(backend, "flux1-tiny-fp8", models["flux_modules"])
    assert np.array_equal(fp8, generate(backend, "flux1-tiny-fp8", models["flux_modules"]))  # same seed, same picture
    assert not np.array_equal(fp8, reference)
    assert psnr(fp8, reference) > CLOSE_PSNR
    whole = generate(backend, "flux1-tiny-whole-fp8")
    assert psnr(whole, fp8) > 60  # the same fp8 transformer, from a whole checkpoint
    plain, stored = transformer_row(backend, "tiny-flux-dev"), transformer_row(backend, "flux1-tiny-fp8")
    assert plain["dtype"] == "float32"
    assert stored["dtype"].startswith("float8_e4m3fn")
    assert stored["bytes"] < plain["bytes"] * 0.3  # fp8's 1 byte a weight against fp32's 4, norms aside
    with backend.manager.use("flux1-tiny-whole-fp8") as model:
        from modules.models.memory import module_bytes

        assert model.components["transformer"].bytes == module_bytes(model.pipe.transformer)
        assert model.pipe.vae.dtype == torch.float32  # only the denoiser is kept in fp8


def test_gguf_transformers_complete_with_component_files_and_stay_quantised(backend, models):
    reference = generate(backend, "tiny-flux-dev")
    q8 = generate(backend, "flux1-tiny-Q8_0", models["flux_modules"])
    q4 = generate(backend, "flux1-tiny-Q4_0", models["flux_modules"])
    assert np.array_equal(q8, generate(backend, "flux1-tiny-Q8_0", models["flux_modules"]))
    assert psnr(q8, reference) > 40 and psnr(q4, reference) > CLOSE_PSNR
    assert psnr(q8, reference) > psnr(q4, reference)  # 8 bits a weight are closer than 4
    plain = transformer_row(backend, "tiny-flux-dev")
    rows = {q: transformer_row(backend, f"flux1-tiny-{q}") for q in ("Q8_0", "Q4_0")}
    assert f"GGUF Q8_0" in rows["Q8_0"]["dtype"] and "GGUF Q4_0" in rows["Q4_0"]["dtype"]
    assert rows["Q4_0"]["bytes"] < rows["Q8_0"]["bytes"] < plain["bytes"] * 0.4
    with pytest.raises(Exception, match="needs a VAE, CLIP-L text encoder, T5-XXL text encoder"):
        generate(backend, "flux1-tiny-Q8_0")


def test_sd35_gguf_takes_its_vae_and_text_encoders_from_files(backend, models):
    reference = generate(backend, "tiny-sd3", cfg_scale=4.0)
    gguf = generate(backend, "sd35-tiny-Q8_0", models["sd3_modules"], cfg_scale=4.0)
    assert psnr(gguf, reference) > 40
    assert "GGUF Q8_0" in transformer_row(backend, "sd35-tiny-Q8_0")["dtype"]


def test_the_fp8_storage_option_stores_a_full_precision_checkpoint_in_fp8(models, tmp_path):
    backend = make_backend(models, tmp_path)
    reference = generate(backend, "tiny-flux-dev")
    backend.settings.update({"fp8_storage": "Enable for SDXL"})  # FLUX is no SDXL: nothing changes
    assert np.array_equal(generate(backend, "tiny-flux-dev"), reference)
    backend.settings.update({"fp8_storage": "Enable"})
    stored = generate(backend, "tiny-flux-dev")
    assert not np.array_equal(stored, reference) and psnr(stored, reference) > CLOSE_PSNR
    rows = [r for r in backend.cached_models() if r["title"].startswith("tiny-flux-dev")]
    dtypes = sorted(next(c["dtype"] for c in r["components"] if c["name"] == "transformer") for r in rows)
    assert dtypes[0] == "float32" and "float8_e4m3fn" in dtypes[1]  # two cache entries: the option is in the key
    backend.settings.update({"fp8_storage": "Disable"})
    assert np.array_equal(generate(backend, "tiny-flux-dev"), reference)
    backend.manager.unload_all()  # the fp8 transformer, hooks and all, is no skeleton for the next plain load
    assert np.array_equal(generate(backend, "tiny-flux-dev"), reference)


def test_sd35_gguf_does_img2img(backend, models):
    from modules.capabilities.img2img import IMG2IMG, Img2ImgRequest

    picture = Image.new("RGB", (64, 64), (200, 40, 40))
    result = backend.run(IMG2IMG, Img2ImgRequest(init_images=[picture], prompt="a red circle", steps=4, width=64,
                                                 height=64, sampler="Euler", cfg_scale=4.0, seed=3,
                                                 denoising_strength=0.5, checkpoint="sd35-tiny-Q8_0",
                                                 forge_additional_modules=models["sd3_modules"], save_images=False))
    assert result.images[0].size == (64, 64) and np.asarray(result.images[0]).std() > 0


def test_fp8_storage_with_bf16_compute(models, tmp_path):
    backend = make_backend(models, tmp_path, dtype=torch.bfloat16)
    reference = generate(backend, "tiny-flux-dev")
    fp8 = generate(backend, "flux1-tiny-fp8", models["flux_modules"])
    assert psnr(fp8, reference) > CLOSE_PSNR
    from modules.models.refs import CHECKPOINT, ModelRef

    with backend.manager.use(ModelRef(CHECKPOINT, "flux1-tiny-fp8", tuple(models["flux_modules"]))) as model:
        linear = model.pipe.transformer.transformer_blocks[0].attn.to_q
        assert linear.weight.dtype == torch.float8_e4m3fn  # stored; cast to bf16 only while it runs
        assert model.pipe.transformer.x_embedder.weight.dtype == torch.float8_e4m3fn
        assert model.pipe.vae.dtype == torch.bfloat16


@pytest.mark.parametrize("offload", ["model", "sequential"])
def test_medvram_and_lowvram_give_the_same_pictures(models, tmp_path, offload):
    plain, offloaded = make_backend(models, tmp_path / "plain"), make_backend(models, tmp_path / offload, offload)
    for checkpoint, modules, cfg in (("tiny-flux-dev", (), 1.0), ("tiny-sd3", (), 4.0),
                                     ("flux1-tiny-fp8", models["flux_modules"], 1.0),
                                     ("flux1-tiny-Q8_0", models["flux_modules"], 1.0)):
        expected = generate(plain, checkpoint, modules, cfg_scale=cfg)
        got = generate(offloaded, checkpoint, modules, cfg_scale=cfg)
        assert np.abs(got.astype(np.int16) - expected).max() <= 1, checkpoint


@pytest.fixture(scope="module")
def client(backend, tmp_path_factory):
    with api_client(backend, tmp_path_factory.mktemp("low-memory-api")) as client:
        yield client


def test_the_api_lists_storage_and_generates_from_a_gguf_file(client, models):
    listed = {m["model_name"]: m for m in client.get("/sdapi/v1/sd-models").json()}
    assert listed["flux1-tiny-Q4_0"]["storage"] == "GGUF Q4_0"
    assert listed["flux1-tiny-fp8"]["storage"] == "float8_e4m3fn" and listed["tiny-flux-dev"]["storage"] is None
    body = {"prompt": "a red circle", "width": 64, "height": 64, "steps": 2, "sampler_name": "Euler", "cfg_scale": 1,
            "seed": 5, "override_settings": {"sd_model_checkpoint": "flux1-tiny-Q4_0",
                                             "forge_additional_modules": models["flux_modules"]}}
    answer = client.post("/sdapi/v1/txt2img", json=body)
    assert answer.status_code == 200, answer.text
    image = np.asarray(Image.open(io.BytesIO(base64.b64decode(answer.json()["images"][0]))))
    assert image.shape == (64, 64, 3) and image.std() > 0
    assert "Model: flux1-tiny-Q4_0" in json.loads(answer.json()["info"])["infotexts"][0]
    cached = client.get("/zoo/v1/models/cached").json()
    entry = next(m for m in cached["models"] if m["title"].startswith("flux1-tiny-Q4_0"))
    transformer = next(c for c in entry["components"] if c["name"] == "transformer")
    assert "GGUF Q4_0" in transformer["dtype"] and transformer["bytes"] > 0
    assert entry["bytes"] >= transformer["bytes"] and cached["ram_bytes"] >= entry["bytes"]


def test_the_fp8_option_is_saved_through_the_api_and_checked(client):
    assert client.post("/sdapi/v1/options", json={"fp8_storage": "Enable"}).status_code == 200
    assert client.get("/sdapi/v1/options").json()["fp8_storage"] == "Enable"
    refused = client.post("/sdapi/v1/options", json={"fp8_storage": "Sometimes"})
    assert refused.status_code == 422 and "fp8_storage" in refused.text
    assert client.post("/sdapi/v1/options", json={"fp8_storage": "Disable"}).status_code == 200


def test_the_models_tab_shows_how_each_component_is_stored(backend, models):
    from modules.ui.models_tab import components_table

    generate(backend, "flux1-tiny-Q8_0", models["flux_modules"])
    table = components_table(backend)
    stored = {(row[0].split(" [")[0], row[1]): row[2] for row in table["data"]}
    assert "GGUF Q8_0" in stored[("flux1-tiny-Q8_0.gguf", "transformer")]
    assert stored[("flux1-tiny-Q8_0.gguf", "vae")] == "float32"
    assert table["headers"][2] == "Stored as"


def test_enable_for_sdxl_stores_sdxl_unets_in_fp8_and_leaves_sd15_alone(models_dir, tmp_path):
    from modules.backend import Backend, BackendConfig
    from modules.devices import device_config

    backend = Backend(BackendConfig(models_dir=models_dir, outdir=tmp_path / "out", cache_dir=tmp_path / "cache",
                                    devices=device_config("cpu"), offline=True))
    reference = generate(backend, "tiny-sdxl", cfg_scale=5.0)
    backend.settings.update({"fp8_storage": "Enable for SDXL"})
    stored = generate(backend, "tiny-sdxl", cfg_scale=5.0)
    generate(backend, "tiny-sd15", cfg_scale=5.0)
    assert not np.array_equal(stored, reference) and psnr(stored, reference) > CLOSE_PSNR
    unets = [(r["title"], next(c["dtype"] for c in r["components"] if c["name"] == "unet"))
             for r in backend.cached_models() if r["kind"] == "checkpoint"]
    assert any(title.startswith("tiny-sdxl") and "float8_e4m3fn" in dtype for title, dtype in unets), unets
    assert all(dtype == "float32" for title, dtype in unets if title.startswith("tiny-sd15")), unets
