"""Every use of another library's internals, in one place.

Gradio, Starlette, diffusers, torch and numpy offer no public way to do these few things, so we reach into
what they do not promise to keep. Each use below names what it relies on and the version it was checked
against (CHECKED); tests/test_compat.py checks each of them and fails naming the internal when an upgrade
changes one, so an upgrade breaks there, loudly, not in a user's session.

Only this file may touch a third-party name with a leading underscore or a Gradio/Starlette attribute that
is not documented. Libraries are imported inside the functions: nothing below modules/ui imports Gradio,
and the security modules that use this file do not load torch.
"""
from __future__ import annotations

import contextlib
import functools
import re
import types
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

CHECKED = {"gradio": "6.31.0", "starlette": "1.10.0", "uvicorn": "0.54.0", "diffusers": "0.42.1",
           "torch": "2.13.0", "numpy": "2.4.6"}

# ---- Gradio 6.31.0 ----------------------------------------------------------------------------------------


def gradio_app():
    """A Gradio app made as `Blocks.launch` makes its own (gradio.routes.App with ORJSONResponse), so that
    the guard and the API are in it before the server opens its port. Gradio 6.31.0."""
    from gradio.routes import App, ORJSONResponse

    return App(default_response_class=ORJSONResponse)


def launch_with_app(demo, app, **options):
    """`demo.launch(**options)` serving `app` (from gradio_app) rather than a new one: launch's private
    `_app` keyword. Gradio 6.31.0. Launch checks that it can reach its own page (networking.url_ok, a HEAD
    that gives up after 3 s) and refuses to start otherwise ("localhost is not accessible"); on a busy
    machine our first page render can take longer, so the check waits up to a minute instead."""
    from unittest import mock

    from gradio import networking

    with mock.patch.object(networking, "url_ok", _page_answers):
        return demo.launch(_app=app, **options)


def _page_answers(url: str, patience: float = 60.0) -> bool:
    import httpx

    deadline = time.monotonic() + patience
    while True:
        try:
            status = httpx.head(url, timeout=max(1.0, deadline - time.monotonic()), verify=False).status_code
            if status in (200, 401, 301, 302, 303, 307, 308):  # gradio's own list (a login answers 401 or 302)
                return True
        except (httpx.ConnectError, httpx.TimeoutException):
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)


def running_server(demo):
    """The uvicorn.Server a launched Blocks runs (`Blocks.server`, undocumented). Gradio 6.31.0."""
    return getattr(demo, "server", None)


@contextlib.contextmanager
def uvicorn_config_for_gradio(settings: dict):
    """While `launch()` runs, Gradio's `uvicorn.Config(...)` gets `settings` too: Gradio builds its server in
    gradio.http_server.start_server through that module's `uvicorn` name and passes no proxy keywords.
    Gradio 6.31.0, uvicorn 0.54.0."""
    from gradio import http_server

    real = http_server.uvicorn
    shim = types.ModuleType(real.__name__)
    shim.__dict__.update(vars(real))
    shim.Config = functools.partial(real.Config, **settings)
    http_server.uvicorn = shim
    try:
        yield
    finally:
        http_server.uvicorn = real


def login_cookie_names(app) -> tuple[str, str]:
    """The names of Gradio's login cookies on `app` (secure and plain-HTTP variants): `access-token-` and
    `access-token-unsecure-` followed by `App.cookie_id`. Gradio 6.31.0."""
    cookie_id = getattr(app, "cookie_id", None)
    return f"access-token-{cookie_id}", f"access-token-unsecure-{cookie_id}"


def login_tokens(app) -> dict:
    """Gradio's logged-in sessions, token -> user name (`App.tokens`; the live dict: removing a token logs
    that session out). Gradio 6.31.0."""
    return getattr(app, "tokens", {})


def logged_in_user(app, cookies: dict) -> str | None:
    """The user a request's Gradio login cookies name on `app`; None when none is valid."""
    secure, plain = login_cookie_names(app)
    token = cookies.get(secure) or cookies.get(plain)
    return login_tokens(app).get(token) if token else None


# Gradio renders the API description into every page as `window.gradio_api_info = {...};</script>`
# (templates/frontend/index.html). Gradio 6.31.0.
_API_INFO = re.compile(rb"(window\.gradio_api_info = ).*?(;</script>)", re.DOTALL)


def replace_api_info(page: bytes, api_info: bytes) -> bytes:
    """`page` (a Gradio HTML page) with `api_info` (JSON) as its embedded API description."""
    return _API_INFO.sub(lambda m: m.group(1) + api_info + m.group(2), page)


# ---- Starlette 1.10.0 -------------------------------------------------------------------------------------


def wrap_outermost(app, wrap) -> None:
    """Put `wrap(inner)` (an ASGI middleware) outside every middleware of a Starlette app, including those
    added later (Gradio adds its CORS middleware when it launches). Starlette builds
    `app.middleware_stack` with `build_middleware_stack()` on the first request; before that the builder is
    wrapped, after it the built stack. Starlette 1.10.0."""
    if app.middleware_stack is None:
        build = app.build_middleware_stack
        app.build_middleware_stack = lambda: wrap(build())
    else:
        app.middleware_stack = wrap(app.middleware_stack)


def keep_read_body(request, body: bytes) -> None:
    """Hand a body read from `request.stream()` back to the request: Starlette's `Request.body()` returns
    `Request._body` when it is set (FastAPI then parses it). Starlette 1.10.0."""
    request._body = body


# ---- diffusers 0.42.1 -------------------------------------------------------------------------------------


def execution_device(pipe) -> torch.device:
    """The device a pipeline runs on, offloading hooks included (`DiffusionPipeline._execution_device`;
    `pipe.device` says "cpu" for an offloaded pipeline). diffusers 0.42.1."""
    return pipe._execution_device


_KNOWN_DEVICE = "_zoo_known_execution_device"


def with_execution_device(view, device: torch.device):
    """`view` (a job's own pipeline object, never the cached one) answering `_execution_device` with `device`.

    diffusers 0.42.1's `DiffusionPipeline._execution_device` walks every module of every component (group-offload
    hooks, then accelerate's) on each read; every pipeline `__call__` reads it once: ~2 ms a job on a CPU, a twentieth
    of a small model's step. The job already knows it (CachedModel.execution_device, found once per placement of the
    weights). An instance cannot shadow a property, so the view becomes an instance of a subclass (same name and
    module: messages and configs read the same) whose property returns the value it was given."""
    cls = type(view)
    if _KNOWN_DEVICE not in cls.__dict__:
        cls = _device_knowing_class(cls)
    object.__setattr__(view, "__class__", cls)
    object.__setattr__(view, _KNOWN_DEVICE, device)
    return view


@functools.cache
def _device_knowing_class(cls: type) -> type:
    def known(self):
        return self.__dict__[_KNOWN_DEVICE]
    return type(cls.__name__, (cls,), {"_execution_device": property(known), _KNOWN_DEVICE: None,
                                       "__module__": cls.__module__, "__qualname__": cls.__qualname__,
                                       "__doc__": cls.__doc__})


def transformers_class_name(class_name: str) -> str:
    """A transformers class name as transformers 5 calls it (older SD folders say CLIPFeatureExtractor):
    diffusers' own table, `deprecation_utils._maybe_remap_transformers_class`. diffusers 0.42.1."""
    try:
        from diffusers.utils.deprecation_utils import _maybe_remap_transformers_class
    except ImportError:
        return class_name
    return _maybe_remap_transformers_class(class_name) or class_name


STEP_END_TENSOR_INPUTS = ["latents", "prompt_embeds"]
"""What our step-end callback reads (`callback_on_step_end_tensor_inputs`): every SD/SDXL pipeline of
diffusers 0.42.1 lists both in its `_callback_tensor_inputs`."""


def switched_conditioning(pipeline, callback_kwargs: dict, prompt_embeds: torch.Tensor,
                          negative_prompt_embeds: torch.Tensor, pooled: torch.Tensor | None = None,
                          negative_pooled: torch.Tensor | None = None) -> dict:
    """Step-end callback outputs that condition the following denoiser calls on new embeddings.

    diffusers 0.42.1's SD and SDXL pipelines (txt2img, img2img, inpaint) read `prompt_embeds` back from the
    callback's outputs, and SDXL's also `add_text_embeds` (the pooled embedding); with classifier-free
    guidance both are already joined as [negative, positive] along the batch (`do_classifier_free_guidance`).
    The time ids do not depend on the prompt and stay as they are."""
    import torch

    current = callback_kwargs["prompt_embeds"]
    guided = bool(getattr(pipeline, "do_classifier_free_guidance", False))

    def joined(negative: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
        value = torch.cat([negative, positive]) if guided else positive
        return value.to(device=current.device, dtype=current.dtype)

    outputs = {"prompt_embeds": joined(negative_prompt_embeds, prompt_embeds)}
    if pooled is not None and negative_pooled is not None:
        outputs["add_text_embeds"] = joined(negative_pooled, pooled)
    return outputs


def with_first_noise(scheduler, noise: torch.Tensor, packed: torch.Tensor | None = None):
    """`scheduler` (a job's own) adding `noise` where the img2img and inpaint pipelines add the noise they
    drew (`scheduler.add_noise(latents, noise, t)` in prepare_latents, and per step for inpainting's kept
    area; `scheduler.scale_noise(latents, t, noise)` in the flow-matching ones, SD3's and FLUX's): how A1111's
    variation seeds reach img2img. `packed`: the same noise as FLUX's inpaint loop holds it (2×2 patches).
    Diffusers 0.42 has no argument for that noise; the pipelines still draw theirs from the generators,
    which advance as A1111's do."""
    known = [noise] + ([packed] if packed is not None else [])

    def ours(drawn):
        if drawn is None:
            return None
        found = next((n for n in known if n.shape == drawn.shape), None)
        return drawn if found is None else found.to(drawn.device, drawn.dtype)

    add_noise = getattr(scheduler, "add_noise", None)  # FlowMatch schedulers have scale_noise only
    if add_noise is not None:
        def add_this_noise(original, drawn, timesteps):
            return add_noise(original, ours(drawn), timesteps)

        scheduler.add_noise = add_this_noise
    scale_noise = getattr(scheduler, "scale_noise", None)
    if scale_noise is not None:
        scheduler.scale_noise = lambda sample, timestep, drawn=None: scale_noise(sample, timestep, ours(drawn))
    return scheduler


def with_scale_noise(scheduler):
    """`scheduler` (a job's own, a multistep solver with flow sigmas: DPM++ 2M, UniPC) as diffusers 0.42.1's SD3
    and FLUX img2img/inpaint pipelines call it:
    - `scale_noise(sample, timestep, noise)`, which only its FlowMatch schedulers define. With flow sigmas the
      solvers' `add_noise` is the same forward process, (1 - σ)·x + σ·noise at the same step index
      (begin_index before the first step, step_index after): only the argument order differs.
    - `set_timesteps(..., sigmas=...)`: FLUX's img2img and inpaint pipelines always hand it a linear schedule,
      which the solvers' set_timesteps does not take; FluxPipeline itself drops it for schedulers with flow
      sigmas (they make their own from flow_shift and mu, as many as the linear schedule has), and so does this.
    - `set_timesteps(..., mu=...)`: FLUX's pipelines always pass the resolution's shift; the solvers assert that
      they shift dynamically when given one. schnell's do not (shift 1): mu is dropped there, as FlowMatch
      schedulers ignore it."""
    import inspect

    if not hasattr(scheduler, "scale_noise"):
        scheduler.scale_noise = lambda sample, timestep, noise=None: scheduler.add_noise(sample, noise, timestep)
    set_timesteps = scheduler.set_timesteps
    if "sigmas" not in inspect.signature(set_timesteps).parameters:
        def set_flow_timesteps(num_inference_steps=None, device=None, sigmas=None, mu=None, **options):
            if mu is not None and scheduler.config.get("use_dynamic_shifting"):
                options["mu"] = mu
            if num_inference_steps is None and sigmas is not None:  # retrieve_timesteps gives the sigmas alone
                num_inference_steps = len(sigmas)
            return set_timesteps(num_inference_steps, device, **options)

        scheduler.set_timesteps = set_flow_timesteps
    return scheduler


# ---- torch 2.13.0 -----------------------------------------------------------------------------------------

def reads_latents(view, channels: int) -> None:
    """A task pipeline view (img2img, inpaint) that takes the latents the img2img capability hands every family
    as its `image`. diffusers' VaeImageProcessor.preprocess passes a tensor of `vae_latent_channels` channels
    through untouched; 0.42.1's Z-Image img2img and inpaint pipelines build theirs with the default 4 (FLUX's and
    SD3's say 16), and its inpaint pipeline VAE-encodes that `image` again in prepare_mask_latents for masked latents
    its loop never reads (it blends with the image's own latents). The view (a job's own object) gets a processor
    that knows the latents' width and, for Z-Image's inpainting, a prepare_mask_latents that only sizes the mask."""
    import torch
    from diffusers import ZImageInpaintPipeline
    from diffusers.image_processor import VaeImageProcessor

    processor = getattr(view, "image_processor", None)
    if isinstance(processor, VaeImageProcessor) and processor.config.vae_latent_channels != channels:
        settings = {k: v for k, v in processor.config.items() if not k.startswith("_")}
        view.image_processor = VaeImageProcessor(**{**settings, "vae_latent_channels": channels})
    if isinstance(view, ZImageInpaintPipeline):
        scale = view.vae_scale_factor * 2

        def prepare_mask_latents(mask, masked_image, batch_size, height, width, dtype, device, generator):
            size = (2 * (int(height) // scale), 2 * (int(width) // scale))
            mask = torch.nn.functional.interpolate(mask, size=size, mode="nearest").to(device=device, dtype=dtype)
            if mask.shape[0] < batch_size:
                mask = mask.repeat(batch_size // mask.shape[0], 1, 1, 1)
            return mask, masked_image  # the image's latents: the loop does not read this one

        view.prepare_mask_latents = prepare_mask_latents


def tree_flatten(tree) -> tuple[list, object]:
    """(leaves, spec) of nested lists, tuples and dicts: `torch.utils._pytree.tree_flatten` (torch has no
    public one). torch 2.13.0."""
    from torch.utils._pytree import tree_flatten as flatten

    return flatten(tree)


def is_alias_of(tensor: torch.Tensor, other: torch.Tensor) -> bool:
    """Whether `tensor` shares storage with `other` (a view of it): `torch._C._is_alias_of`. torch 2.13.0."""
    import torch

    return torch._C._is_alias_of(tensor, other)


def own_parameters(module: torch.nn.Module) -> dict:
    """A module's own parameter slots, name -> Parameter or None (`Module._parameters`, the dict
    `named_parameters` reads; assigning into it swaps a tensor without re-registering). torch 2.13.0."""
    return module._parameters


def own_buffers(module: torch.nn.Module) -> dict:
    """A module's own buffer slots, name -> Tensor or None (`Module._buffers`). torch 2.13.0."""
    return module._buffers


def non_persistent_buffers(module: torch.nn.Module) -> set:
    """Names of a module's own buffers kept out of its state dict (`Module._non_persistent_buffers_set`).
    torch 2.13.0."""
    return module._non_persistent_buffers_set


# ---- numpy 2.4.6 (training checkpoints only) --------------------------------------------------------------


def numpy_scalar_globals() -> list:
    """What `torch.load(weights_only=True)` must allow to read a numpy float scalar: numpy pickles it as
    `numpy._core.multiarray.scalar` with its dtype. numpy 2.4.6."""
    import numpy as np

    return [np._core.multiarray.scalar, np.dtype, type(np.dtype("float64"))]


# ---- diffusers 0.42.1 with peft 0.21.2: LoRA adapters on a pipeline's modules ---------------------------


def lora_loadable_modules(pipe) -> list[str]:
    """The components a pipeline's LoRA loader writes into ("unet", "text_encoder", "text_encoder_2"):
    the LoRA mixins' private `_lora_loadable_modules`. diffusers 0.42.1."""
    return list(getattr(type(pipe), "_lora_loadable_modules", ()))


def module_adapters(module) -> list[str]:
    """The LoRA adapters attached to a model (diffusers ModelMixin or transformers PreTrainedModel): the names
    of its `peft_config`, which both integrations keep. diffusers 0.42.1, transformers 5.23.0."""
    return list(getattr(module, "peft_config", None) or {})


def activate_adapters(module, names: list[str], weights: list[float]) -> None:
    """Make exactly `names` active on `module`'s LoRA layers, each at its weight (a layer without one of them
    skips it), and enable them: diffusers.utils.peft_utils.set_weights_and_activate_adapters and
    set_adapter_layers, what `pipe.set_adapters` calls per component. diffusers 0.42.1."""
    from diffusers.utils.peft_utils import set_adapter_layers, set_weights_and_activate_adapters

    set_weights_and_activate_adapters(module, names, weights)
    set_adapter_layers(module, enabled=True)


def disable_adapters(module) -> None:
    """Every LoRA layer of `module` runs its base layer alone (bit-identical to no LoRA). diffusers 0.42.1."""
    from diffusers.utils.peft_utils import set_adapter_layers

    set_adapter_layers(module, enabled=False)


def keep_adapter_in(module, name: str, dtype) -> None:
    """One adapter's LoRA layers kept in `dtype`. peft 0.21.2 gives a new adapter's lora_A/lora_B its base layer's
    weight dtype: float8 for a denoiser stored in fp8 (fp8_storage.py casts the base layers as they run, not the
    LoRA's), which would round the LoRA away and which CPU matmuls do not take."""
    import torch

    for layer in module.modules():
        for table in ("lora_A", "lora_B"):
            part = getattr(layer, table, None)
            if isinstance(part, torch.nn.ModuleDict) and name in part:
                part[name].to(dtype)


def delete_adapter(module, name: str) -> None:
    """Drop one adapter's LoRA weights and config from `module`; the wrapping layers stay while other adapters
    remain. diffusers.utils.peft_utils.delete_adapter_layers does the layers (and transformers' config);
    a diffusers model's own `peft_config` entry is popped here. diffusers 0.42.1."""
    import warnings

    from diffusers.utils.peft_utils import delete_adapter_layers

    with warnings.catch_warnings():
        # peft says so when the adapter deleted is the active one (a file that failed to attach): another becomes
        # active, and LoraAdapters.apply sets exactly the job's before the next call anyway.
        warnings.filterwarnings("ignore", message=r"Adapter \S+ was active which is now deleted")
        delete_adapter_layers(module, name)
    config = getattr(module, "peft_config", None)
    if config is not None:
        config.pop(name, None)


def remove_lora_layers(module) -> None:
    """Put every LoRA-wrapped layer's own base layer back in its place and forget the adapters: the module is
    then as it was loaded, holding the same parameter objects. diffusers' recurse_remove_peft_layers plus what
    `unload_lora` / `_remove_text_encoder_monkey_patch` reset (`peft_config`, `_hf_peft_config_loaded`).
    diffusers 0.42.1."""
    if not hasattr(module, "peft_config"):  # never had an adapter (both integrations set it on the first)
        return
    from diffusers.utils.peft_utils import recurse_remove_peft_layers

    recurse_remove_peft_layers(module)
    if hasattr(module, "peft_config"):
        del module.peft_config
    if hasattr(module, "_hf_peft_config_loaded"):
        module._hf_peft_config_loaded = None


def disabled_lora_base(layer):
    """The layer a LoRA layer wraps, when every adapter on it is disabled and none merged (its forward is then
    the base layer's alone), else None: peft's BaseTunerLayer.disable_adapters, merged and base_layer.
    peft 0.21.2 as diffusers 0.42.1 uses it."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    if isinstance(layer, BaseTunerLayer) and layer.disable_adapters and not layer.merged:
        return layer.base_layer
    return None


def has_forward_hooks(module) -> bool:
    """Whether something runs around `module`'s forward: torch's forward (pre-)hooks, or a diffusers hook
    registry (layerwise casting, group offload). torch 2.13, diffusers 0.42.1."""
    return bool(module._forward_hooks or module._forward_pre_hooks) or getattr(module, "_diffusers_hook", None) is not None


# ---- diffusers 0.42.1: VAE tiling for one call ---------------------------------------------------------------


def vae_tile_latent_size(vae) -> int | None:
    """The latent side of one of AutoencoderKL's decode tiles (`tile_latent_min_size`, set in its __init__
    from config.sample_size; 64 for SD 1.x, 128 for SDXL); None for a VAE without tiling. diffusers 0.42.1."""
    size = getattr(vae, "tile_latent_min_size", None)
    return size if isinstance(size, int) and size > 0 and hasattr(vae, "tiled_decode") else None


def _offload_hook(vae) -> None:
    """What `decode`/`encode`'s apply_forward_hook does before they run: an offloaded VAE (--medvram) is brought
    to the device by its accelerate hook (`_hf_hook.pre_forward`). diffusers 0.42.1."""
    hook = getattr(vae, "_hf_hook", None)
    if hook is not None and hasattr(hook, "pre_forward"):
        hook.pre_forward(vae)


def vae_tiled_decode(vae, latents: "torch.Tensor") -> "torch.Tensor":
    """AutoencoderKL.tiled_decode for this call only (overlapping tiles of tile_latent_min_size, blended), without
    `enable_tiling`, which would change the shared cached VAE for every job. diffusers 0.42.1."""
    _offload_hook(vae)
    return vae.tiled_decode(latents).sample


def vae_tiled_encode_mean(vae, pixels: "torch.Tensor") -> "torch.Tensor":
    """The latent distribution's mean of pixels encoded in tiles: AutoencoderKL._tiled_encode (the moments, mean
    then log-variance along channels) for this call only. diffusers 0.42.1."""
    _offload_hook(vae)
    moments = vae._tiled_encode(pixels)
    return moments.chunk(2, dim=1)[0]


# ---- low memory: fp8 storage (layerwise casting) and GGUF (diffusers 0.42.1) ----------------------------


def store_layerwise(module, storage_dtype: "torch.dtype", compute_dtype: "torch.dtype") -> None:
    """Weights kept in `storage_dtype` (fp8) and cast to `compute_dtype` around each layer's forward
    (diffusers' layerwise casting hooks, on the Linear/Conv/Embedding layers it supports:
    hooks._common._GO_LC_SUPPORTED_PYTORCH_LAYERS). A module read from an fp8 file has fp8 layers already:
    exactly those are hooked, so it keeps the file's storage. Otherwise ModelMixin.enable_layerwise_casting
    casts it, skipping the precision-critical layers (norms and modulation, positional embeddings:
    `_skip_layerwise_casting_patterns`). Parameters left in fp8 outside a hooked layer (an fp8 file's norm
    scales) get `compute_dtype`: they run without a cast. diffusers 0.42.1."""
    import torch
    from diffusers.hooks._common import _GO_LC_SUPPORTED_PYTORCH_LAYERS
    from diffusers.hooks.layerwise_casting import apply_layerwise_casting_hook

    layers = [m for m in module.modules() if isinstance(m, _GO_LC_SUPPORTED_PYTORCH_LAYERS)
              and isinstance(getattr(m, "weight", None), torch.Tensor)]
    stored = [m for m in layers if m.weight.dtype == storage_dtype]
    if stored:
        for layer in stored:
            apply_layerwise_casting_hook(layer, storage_dtype, compute_dtype, False)
            for param in layer.parameters(recurse=False):  # a bias kept in bf16 by the file: stored as fp8 too
                param.data = param.data.to(storage_dtype)
    else:
        module.enable_layerwise_casting(storage_dtype=storage_dtype, compute_dtype=compute_dtype)
    for owner in module.modules():
        registry = getattr(owner, "_diffusers_hook", None)
        if registry is not None and registry.get_hook("layerwise_casting") is not None:
            continue
        for param in owner.parameters(recurse=False):
            if param.dtype in (torch.float8_e4m3fn, torch.float8_e5m2):
                param.data = param.data.to(compute_dtype)


def is_layerwise_stored(module) -> bool:
    """Whether any layer of `module` carries a layerwise-casting hook (store_layerwise)."""
    return any(getattr(owner, "_diffusers_hook", None) is not None
               and owner._diffusers_hook.get_hook("layerwise_casting") is not None for owner in module.modules())


def gguf_tensors(path) -> dict:
    """{name: tensor} of a GGUF file (its header checked first by modules/models/gguf_header.py): quantised
    ones as diffusers' GGUFParameter (raw blocks, `quant_type`), F32/F16 as plain tensors.
    diffusers.models.model_loading_utils.load_gguf_checkpoint, 0.42.1."""
    from diffusers.models.model_loading_utils import load_gguf_checkpoint

    return load_gguf_checkpoint(str(path))


def gguf_type_name(tensor) -> str | None:
    """"Q8_0", "BF16" ... for a GGUF-stored weight (diffusers' GGUFParameter.quant_type), None otherwise."""
    quant_type = getattr(tensor, "quant_type", None)
    return getattr(quant_type, "name", None) if quant_type is not None else None


def gguf_loadable_types() -> list[str]:
    """The GGUF types diffusers' loader dequantises (SUPPORTED_GGUF_QUANT_TYPES) plus the plain F32/F16."""
    from diffusers.quantizers.gguf.utils import SUPPORTED_GGUF_QUANT_TYPES

    return sorted({t.name for t in SUPPORTED_GGUF_QUANT_TYPES} | {"F32", "F16"})


def frames_compiled() -> int:
    """How many Python frames torch.compile (dynamo) has compiled in this process, first compiles and recompiles
    alike: `torch._dynamo.utils.counters["frames"]["ok"]`. torch 2.13.0."""
    from torch._dynamo.utils import counters

    return int(counters["frames"]["ok"])
