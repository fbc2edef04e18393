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
    `_app` keyword. Gradio 6.31.0."""
    return demo.launch(_app=app, **options)


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


def with_first_noise(scheduler, noise: torch.Tensor):
    """`scheduler` (a job's own) adding `noise` where the img2img and inpaint pipelines add the noise they
    drew (`scheduler.add_noise(latents, noise, t)` in prepare_latents, and per step for inpainting's kept
    area): how A1111's variation seeds reach img2img. Diffusers 0.42 has no argument for that noise; the
    pipelines still draw theirs from the generators, which advance as A1111's do."""
    add_noise = scheduler.add_noise

    def add_this_noise(original, drawn, timesteps):
        return add_noise(original, noise.to(drawn.device, drawn.dtype) if drawn.shape == noise.shape else drawn,
                         timesteps)

    scheduler.add_noise = add_this_noise
    return scheduler


# ---- torch 2.13.0 -----------------------------------------------------------------------------------------

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


def delete_adapter(module, name: str) -> None:
    """Drop one adapter's LoRA weights and config from `module`; the wrapping layers stay while other adapters
    remain. diffusers.utils.peft_utils.delete_adapter_layers does the layers (and transformers' config);
    a diffusers model's own `peft_config` entry is popped here. diffusers 0.42.1."""
    from diffusers.utils.peft_utils import delete_adapter_layers

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


def frames_compiled() -> int:
    """How many Python frames torch.compile (dynamo) has compiled in this process, first compiles and recompiles
    alike: `torch._dynamo.utils.counters["frames"]["ok"]`. torch 2.13.0."""
    from torch._dynamo.utils import counters

    return int(counters["frames"]["ok"])
