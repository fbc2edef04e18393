"""The other libraries' internals that modules/compat.py relies on are still there and still do what it
expects. A failure names the internal and the version it was checked with: read its comment in
modules/compat.py, adapt that one function, and update CHECKED."""
from __future__ import annotations

import importlib
import inspect
import io
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from modules import compat
from tests.waiting import run_coroutine

ROOT = Path(__file__).resolve().parent.parent
CHECKS = []


def relies_on(internal: str, library: str):
    """Register a check of `internal` (a name in `library`) that modules/compat.py uses."""
    def register(check):
        CHECKS.append(pytest.param(internal, library, check, id=internal))
        return check
    return register


def source(module_name: str) -> str:
    return inspect.getsource(importlib.import_module(module_name))


# ---- Gradio ----


@relies_on("gradio.Blocks.launch(_app=)", "gradio")
def _launch_takes_an_app():
    import gradio

    assert "_app" in inspect.signature(gradio.Blocks.launch).parameters
    assert re.search(r"App\.create_app\(\s*self,[^)]*app=_app", source("gradio.blocks")), \
        "launch no longer hands _app to App.create_app"


@relies_on("gradio.routes.App(default_response_class=ORJSONResponse)", "gradio")
def _app_is_made_as_gradio_makes_it():
    app = compat.gradio_app()
    assert type(app).__module__ == "gradio.routes" and type(app).__name__ == "App"
    assert 'app_kwargs.setdefault("default_response_class", ORJSONResponse)' in source("gradio.routes")


@relies_on("gradio.routes.App.tokens", "gradio")
def _tokens_map_login_tokens_to_users():
    app = compat.gradio_app()
    assert compat.login_tokens(app) is app.tokens and app.tokens == {}
    text = source("gradio.routes")
    assert "app.tokens[token] = username" in text, "the login route no longer records token -> user in App.tokens"
    assert "app.tokens.get(token)" in text or "app.tokens[token]" in text


@relies_on("gradio.routes.App.cookie_id (access-token-<id> cookies)", "gradio")
def _login_cookies_are_named_by_cookie_id():
    app = compat.gradio_app()
    assert isinstance(app.cookie_id, str) and app.cookie_id
    text = source("gradio.routes")
    secure, plain = compat.login_cookie_names(app)
    assert secure == f"access-token-{app.cookie_id}" and plain == f"access-token-unsecure-{app.cookie_id}"
    assert 'f"access-token-{app.cookie_id}"' in text and 'f"access-token-unsecure-{app.cookie_id}"' in text
    app.tokens["t0k"] = "ann"
    assert compat.logged_in_user(app, {plain: "t0k"}) == "ann"
    assert compat.logged_in_user(app, {secure: "other"}) is None


@relies_on("window.gradio_api_info in gradio's index.html", "gradio")
def _pages_embed_the_api_info_where_we_replace_it():
    import gradio

    template = (Path(gradio.__file__).parent / "templates" / "frontend" / "index.html").read_text(encoding="utf-8")
    assert "<script>window.gradio_api_info = {{ gradio_api_info | toorjson }};</script>" in template
    page = template.replace("{{ gradio_api_info | toorjson }}", '{"named_endpoints": {"/secret": 1}}').encode()
    replaced = compat.replace_api_info(page, b"{}")
    assert b"/secret" not in replaced and b"window.gradio_api_info = {};</script>" in replaced


@relies_on("gradio.Blocks.server", "gradio")
def _a_launched_blocks_keeps_its_server():
    assert "self.server = server" in source("gradio.blocks")


@relies_on("gradio.http_server.uvicorn.Config", "gradio")
def _gradio_builds_its_server_through_its_uvicorn_name():
    import uvicorn
    from gradio import http_server

    assert http_server.uvicorn is uvicorn
    assert "uvicorn.Config(" in inspect.getsource(http_server.start_server)
    settings = {"proxy_headers": False, "forwarded_allow_ips": []}
    with compat.uvicorn_config_for_gradio(settings):
        config = http_server.uvicorn.Config(app=None)
    assert http_server.uvicorn is uvicorn
    assert (config.proxy_headers, config.forwarded_allow_ips) == (False, [])


@relies_on("uvicorn.Config(proxy_headers=, forwarded_allow_ips=)", "uvicorn")
def _uvicorn_takes_the_proxy_keywords():
    import uvicorn

    parameters = inspect.signature(uvicorn.Config).parameters
    assert "proxy_headers" in parameters and "forwarded_allow_ips" in parameters


# ---- Starlette ----


@relies_on("starlette Starlette.build_middleware_stack / middleware_stack", "starlette")
def _starlette_builds_its_stack_on_the_first_request():
    from starlette.applications import Starlette

    assert "self.middleware_stack = self.build_middleware_stack()" in inspect.getsource(Starlette.__call__)
    app, seen = Starlette(), []

    async def outer_of(inner, scope, receive, send):
        seen.append(scope["type"])
        await inner(scope, receive, send)

    compat.wrap_outermost(app, lambda inner: lambda *a: outer_of(inner, *a))
    assert app.middleware_stack is None

    async def lifespan():
        async def receive():
            return {"type": "lifespan.shutdown"}

        async def send(_):
            pass
        await app({"type": "lifespan", "state": {}}, receive, send)
    run_coroutine(lifespan())
    assert seen == ["lifespan"], "the wrapper did not end up outermost"


@relies_on("starlette Request._body", "starlette")
def _a_kept_body_is_what_request_body_returns():
    from starlette.requests import Request

    async def receive():
        raise AssertionError("the body was read again")

    request = Request({"type": "http", "method": "POST", "path": "/", "headers": []}, receive)
    compat.keep_read_body(request, b'{"a": 1}')
    assert run_coroutine(request.body()) == b'{"a": 1}'


# ---- diffusers ----


@relies_on("diffusers LoRA mixins' _lora_loadable_modules and peft_utils adapter helpers", "diffusers")
def _lora_adapter_helpers():
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline
    from diffusers.utils import peft_utils

    assert StableDiffusionPipeline._lora_loadable_modules == ["unet", "text_encoder"]
    assert StableDiffusionXLPipeline._lora_loadable_modules == ["unet", "text_encoder", "text_encoder_2"]
    for name in ("set_weights_and_activate_adapters", "set_adapter_layers", "delete_adapter_layers",
                 "recurse_remove_peft_layers"):
        assert callable(getattr(peft_utils, name)), name


@relies_on("diffusers DiffusionPipeline._execution_device", "diffusers")
def _pipelines_know_their_execution_device():
    from diffusers import DiffusionPipeline

    assert isinstance(inspect.getattr_static(DiffusionPipeline, "_execution_device"), property)


@relies_on("diffusers pipelines read self._execution_device in __call__ (with_execution_device)", "diffusers")
def _pipelines_read_the_execution_device_their_view_answers():
    import copy

    from diffusers import (DDIMScheduler, StableDiffusionImg2ImgPipeline, StableDiffusionPipeline,
                           StableDiffusionXLPipeline)

    for cls in (StableDiffusionPipeline, StableDiffusionXLPipeline, StableDiffusionImg2ImgPipeline):
        assert "device = self._execution_device" in inspect.getsource(cls.__call__), cls.__name__
    pipe = StableDiffusionPipeline(vae=None, text_encoder=None, tokenizer=None, unet=None, scheduler=DDIMScheduler(steps_offset=1, clip_sample=False),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    view = compat.with_execution_device(copy.copy(pipe), torch.device("meta"))
    assert view._execution_device == torch.device("meta") and pipe._execution_device == torch.device("cpu")
    assert isinstance(view, StableDiffusionPipeline) and view.config == pipe.config


@relies_on("diffusers deprecation_utils._maybe_remap_transformers_class", "diffusers")
def _diffusers_remaps_old_transformers_names():
    from diffusers.utils.deprecation_utils import _maybe_remap_transformers_class  # noqa: F401 - must exist

    assert compat.transformers_class_name("CLIPFeatureExtractor") == "CLIPImageProcessor"
    assert compat.transformers_class_name("CLIPTextModel") == "CLIPTextModel"


@relies_on("diffusers pipelines' callback_on_step_end outputs (prompt_embeds, add_text_embeds)", "diffusers")
def _pipelines_take_new_conditioning_from_the_step_end_callback():
    import diffusers

    for name in ("StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline", "StableDiffusionInpaintPipeline",
                 "StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline", "StableDiffusionXLInpaintPipeline"):
        cls = getattr(diffusers, name)
        assert set(compat.STEP_END_TENSOR_INPUTS) <= set(cls._callback_tensor_inputs), name
        source = inspect.getsource(cls.__call__)
        assert 'callback_outputs.pop("prompt_embeds", prompt_embeds)' in source, name
        assert "torch.cat([negative_prompt_embeds, prompt_embeds]" in source, name
        if "XL" in name:
            assert 'callback_outputs.pop("add_text_embeds", add_text_embeds)' in source, name
            assert '"text_embeds": add_text_embeds' in source, name


@relies_on("diffusers SD3/FLUX img2img/inpaint pipelines' scale_noise, sigmas and mu; the solvers' flow add_noise",
           "diffusers")
def _flow_solvers_serve_the_flow_img2img_pipelines():
    import diffusers

    for name in ("StableDiffusion3Img2ImgPipeline", "StableDiffusion3InpaintPipeline", "FluxImg2ImgPipeline",
                 "FluxInpaintPipeline"):
        source = inspect.getsource(getattr(diffusers, name))
        assert "self.scheduler.scale_noise(" in source, name
    for name in ("FluxImg2ImgPipeline", "FluxInpaintPipeline"):
        assert "sigmas=sigmas" in inspect.getsource(getattr(diffusers, name).__call__), name
    sample, noise = torch.randn(1, 4, 2, 2), torch.randn(1, 4, 2, 2)
    for cls in (diffusers.DPMSolverMultistepScheduler, diffusers.UniPCMultistepScheduler):
        solver = compat.with_scale_noise(cls.from_config({"num_train_timesteps": 1000}, flow_shift=3.0,
                                                         use_flow_sigmas=True, prediction_type="flow_prediction"))
        solver.set_timesteps(sigmas=np.linspace(1.0, 1 / 8, 8), mu=0.5)  # as FLUX's pipelines call it
        solver.set_begin_index(2)
        assert len(solver.timesteps) == 8
        sigma = float(solver.sigmas[2])  # the flow forward process at the begin index: (1 - σ)·x + σ·noise
        expected = (1 - sigma) * sample + sigma * noise
        assert torch.allclose(solver.scale_noise(sample, solver.timesteps[2:3], noise), expected, atol=1e-5), cls


@relies_on("diffusers SD3/FLUX pipelines call their transformer with encoder_hidden_states, pooled_projections",
           "diffusers")
def _flow_pipelines_name_the_transformers_text_inputs():
    import diffusers

    from modules.generation.transformer_conditioning import POOLED_INPUT, TEXT_INPUT

    for name in ("StableDiffusion3Pipeline", "StableDiffusion3Img2ImgPipeline", "StableDiffusion3InpaintPipeline",
                 "FluxPipeline", "FluxImg2ImgPipeline", "FluxInpaintPipeline"):
        source = inspect.getsource(getattr(diffusers, name).__call__)
        assert f"{TEXT_INPUT}=prompt_embeds" in source and f"{POOLED_INPUT}=pooled_prompt_embeds" in source, name
        if name.startswith("Flux"):  # real CFG: the positive call first, then the negative one
            assert source.index(f"{TEXT_INPUT}=prompt_embeds") < source.index(f"{TEXT_INPUT}=negative_prompt_embeds")


@relies_on("diffusers Z-Image img2img/inpaint pipelines: image_processor (vae_latent_channels), prepare_mask_latents",
           "diffusers")
def _z_image_task_pipelines_read_latents_through_the_fix():
    from diffusers import AutoencoderKL, ZImageImg2ImgPipeline, ZImageInpaintPipeline

    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=16, block_out_channels=(8, 8),
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        layers_per_block=1, norm_num_groups=8)
    latents = torch.randn(1, 16, 4, 4)
    for cls in (ZImageImg2ImgPipeline, ZImageInpaintPipeline):
        view = cls(scheduler=None, vae=vae, text_encoder=None, tokenizer=None, transformer=None)
        compat.reads_latents(view, 16)
        assert torch.equal(view.image_processor.preprocess(latents), latents)  # untouched: latents, not a picture
    text = inspect.getsource(ZImageInpaintPipeline.__call__)
    assert "self.prepare_mask_latents(" in text and "masked_image if masked_image is not None else init_image" in text
    assert list(inspect.signature(ZImageInpaintPipeline.prepare_mask_latents).parameters)[1:] == [
        "mask", "masked_image", "batch_size", "height", "width", "dtype", "device", "generator"]
    loop = text[text.index("# 9. Denoising loop"):]
    # read only to hand a step-end callback's change back to it
    assert loop.count("masked_image_latents") == 3 and 'callback_outputs.pop("masked_image_latents"' in loop
    side = 64 // view.vae_scale_factor  # the VAE's latents for 64 pixels
    mask, kept = view.prepare_mask_latents(torch.ones(1, 1, 64, 64), latents, 2, 64, 64, torch.float32, "cpu", None)
    assert mask.shape == (2, 1, side, side) and kept is latents


# ---- torch ----


@relies_on("torch.utils._pytree.tree_flatten", "torch")
def _tree_flatten_finds_nested_tensors():
    a, b = torch.zeros(1), torch.ones(2)
    leaves, _ = compat.tree_flatten(([a], {"k": (1, b)}))
    assert [leaf for leaf in leaves if isinstance(leaf, torch.Tensor)] == [a, b]


@relies_on("torch._C._is_alias_of", "torch")
def _alias_means_shared_storage():
    base = torch.arange(8.0)
    assert compat.is_alias_of(base[2:4], base) and compat.is_alias_of(base.view(2, 4), base)
    assert not compat.is_alias_of(base.clone(), base)


@relies_on("torch.nn.Module._parameters / _buffers / _non_persistent_buffers_set", "torch")
def _module_slots_are_the_live_dicts():
    norm = torch.nn.BatchNorm1d(3)
    norm.register_buffer("scratch", torch.zeros(1), persistent=False)
    assert set(compat.own_parameters(norm)) == {"weight", "bias"}
    assert {"running_mean", "running_var", "scratch"} <= set(compat.own_buffers(norm))
    assert compat.non_persistent_buffers(norm) == {"scratch"}
    compat.own_buffers(norm)["running_mean"] = torch.full((3,), 7.0)
    compat.own_parameters(norm)["bias"] = torch.nn.Parameter(torch.full((3,), 2.0))
    assert norm.running_mean.tolist() == [7.0] * 3 and norm.state_dict()["bias"].tolist() == [2.0] * 3
    assert "scratch" not in norm.state_dict()


@relies_on("diffusers AutoencoderKL.tiled_decode / _tiled_encode / tile_latent_min_size", "diffusers")
def _vae_tiles_for_one_call():
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(block_out_channels=(8, 8), down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=4, sample_size=16).eval()
    assert compat.vae_tile_latent_size(vae) == 8
    with torch.no_grad():
        assert compat.vae_tiled_decode(vae, torch.randn(1, 4, 16, 16)).shape == (1, 3, 32, 32)
        assert compat.vae_tiled_encode_mean(vae, torch.randn(1, 3, 32, 32)).shape == (1, 4, 16, 16)
    assert not vae.use_tiling


@relies_on("diffusers layerwise casting: enable_layerwise_casting, hooks' apply_layerwise_casting_hook, "
           "_GO_LC_SUPPORTED_PYTORCH_LAYERS, the 'layerwise_casting' hook name", "diffusers")
def _layerwise_casting_keeps_fp8_and_computes_in_another_dtype():
    from diffusers import FluxTransformer2DModel

    torch.manual_seed(0)
    model = FluxTransformer2DModel(patch_size=1, in_channels=16, num_layers=1, num_single_layers=1,
                                   attention_head_dim=8, num_attention_heads=2, joint_attention_dim=16,
                                   pooled_projection_dim=8, axes_dims_rope=(2, 2, 4)).eval()
    plain = model.transformer_blocks[0].attn.to_q
    compat.store_layerwise(model, torch.float8_e4m3fn, torch.float32)  # a bf16/fp32 module: diffusers' choice
    assert plain.weight.dtype == torch.float8_e4m3fn and compat.is_layerwise_stored(model)
    assert model.transformer_blocks[0].norm1.linear.weight.dtype == torch.float32  # modulation: skipped
    with torch.no_grad():
        out = model(hidden_states=torch.randn(1, 4, 16), encoder_hidden_states=torch.randn(1, 3, 16),
                    pooled_projections=torch.randn(1, 8), timestep=torch.tensor([0.5]),
                    img_ids=torch.zeros(4, 3), txt_ids=torch.zeros(3, 3)).sample
    assert out.dtype == torch.float32 and torch.isfinite(out).all() and plain.weight.dtype == torch.float8_e4m3fn
    stored = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))  # as read from an fp8 file
    stored.to(torch.float8_e4m3fn)
    compat.store_layerwise(stored, torch.float8_e4m3fn, torch.float32)
    assert stored[0].weight.dtype == torch.float8_e4m3fn and stored[1].weight.dtype == torch.float32
    assert stored(torch.randn(2, 4)).dtype == torch.float32


@relies_on("peft BaseTunerLayer.disable_adapters, merged, base_layer (a disabled LoRA layer computes its base alone); "
           "torch Module._forward_hooks/_forward_pre_hooks", "diffusers")
def _disabled_lora_layers_compute_their_base_layer():
    from peft import LoraConfig, inject_adapter_in_model

    model = torch.nn.Sequential(torch.nn.Linear(4, 4))
    base = model[0]
    assert not compat.has_forward_hooks(base)
    inject_adapter_in_model(LoraConfig(target_modules=["0"], r=2, init_lora_weights=False), model)
    wrapped = model[0]
    assert compat.disabled_lora_base(wrapped) is None  # the adapter is on
    wrapped.enable_adapters(False)
    assert compat.disabled_lora_base(wrapped) is base
    x = torch.randn(2, 4)
    assert torch.equal(model(x), base(x))
    handle = base.register_forward_pre_hook(lambda *_: None)
    assert compat.has_forward_hooks(base)
    handle.remove()


@relies_on("diffusers load_gguf_checkpoint, GGUFParameter.quant_type, SUPPORTED_GGUF_QUANT_TYPES", "diffusers")
def _gguf_files_load_as_quantised_parameters():
    import tempfile
    from pathlib import Path

    from tests import gguf_fixtures

    with tempfile.TemporaryDirectory() as folder:
        path = gguf_fixtures.write_gguf({"a.weight": torch.randn(4, 64), "a.bias": torch.randn(4)},
                                        Path(folder) / "a.gguf", "Q4_0")
        tensors = compat.gguf_tensors(path)
    assert compat.gguf_type_name(tensors["a.weight"]) == "Q4_0" and tensors["a.weight"].shape == (4, 36)
    assert compat.gguf_type_name(tensors["a.bias"]) is None and tensors["a.bias"].dtype == torch.float32
    assert {"Q8_0", "Q4_0", "BF16", "F16", "F32", "Q4_K"} <= set(compat.gguf_loadable_types())


# ---- numpy ----


@relies_on("numpy._core.multiarray.scalar (torch.load of a numpy float)", "numpy")
def _numpy_floats_load_with_weights_only():
    buffer = io.BytesIO()
    torch.save({"lr": np.float64(0.25)}, buffer)
    buffer.seek(0)
    with torch.serialization.safe_globals(compat.numpy_scalar_globals()):
        assert torch.load(buffer, weights_only=True)["lr"] == 0.25


@pytest.mark.parametrize("internal, library, check", CHECKS)
def test_internal_still_works(internal, library, check):
    try:
        check()
    except Exception as e:  # noqa: BLE001 - any failure is the same news: this internal changed
        version = importlib.import_module(library).__version__
        pytest.fail(f"{internal} changed in {library} {version} (modules/compat.py was checked against "
                    f"{library} {compat.CHECKED[library]}): {type(e).__name__}: {e}", pytrace=False)


def test_every_checked_library_is_named():
    assert {library for _, library, _ in (p.values for p in CHECKS)} == set(compat.CHECKED)


# What only modules/compat.py may write: other libraries' private names and Gradio's undocumented attributes.
INTERNALS = [
    r"\b_app\s*=", r"\._execution_device\b", r"\b_pytree\b", r"\btorch\._C\b", r"\._parameters\b", r"\._buffers\b",
    r"\._non_persistent_buffers_set\b", r"\._body\b", r"\.tokens\b", r"\bcookie_id\b", r"gradio_api_info",
    r"build_middleware_stack", r"\bnp\._core\b", r"_maybe_remap_transformers_class", r"http_server\.uvicorn",
    r"from (gradio|starlette|uvicorn|fastapi|diffusers|transformers|torch|numpy|PIL)[\w.]* import .*\b_\w",
]


def test_internals_are_used_only_in_compat():
    files = [ROOT / "webui.py", *sorted((ROOT / "modules").rglob("*.py")), *sorted((ROOT / "extensions").rglob("*.py"))]
    found = []
    for file in files:
        if file == ROOT / "modules" / "compat.py":
            continue
        for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if any(re.search(pattern, code) for pattern in INTERNALS):
                found.append(f"{file.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "use modules/compat.py for these:\n" + "\n".join(found)


def test_dynamo_counts_the_frames_it_compiles():
    """torch._dynamo.utils.counters["frames"]["ok"]: --compile's warm-up is the time of the calls that moved it."""
    before = compat.frames_compiled()
    compiled = torch.compile(lambda x: x * 2 + 1, backend="eager")
    assert torch.equal(compiled(torch.ones(3)), torch.full((3,), 3.0))
    assert compat.frames_compiled() == before + 1
    compiled(torch.ones(3))
    assert compat.frames_compiled() == before + 1  # the same shape: nothing compiled again
