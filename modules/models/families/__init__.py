"""Model families: everything that differs between SD 1.x, SD 2.x, SDXL, … in one file each.

A family file (sd1.py, sdxl.py, …) defines one or more `Family` values in a module-level
`FAMILIES` tuple; this package finds the files by itself, so adding a family is one new file
here plus its tests. Everything else asks a family for facts instead of testing names:

    detect.py        which family a checkpoint's header or diffusers folder is
    config_classes   the pipeline classes a model folder may declare
    loader.py        the pipeline class per task, extra load options
    fast_load.py     which single-file converter builds each component, what is never loaded
    registry.py      native size (from the denoiser's config), text encoder layers (clip skip range)
    vae_files.py     a VAE file's latent format (scaling and shift factors)
    preview.py       the cheap latent → RGB preview
    prompt_embeds.py the text encoder layout (one or two encoders, pooled output, clip skip; T5 for SD3/FLUX;
                     a family's own encoder: Z-Image's Qwen3)
    samplers.py      which samplers it offers (flow matching for SD3/FLUX), guidance.py how CFG reaches it
    component_files  what a single file lacks and where a separate VAE / text encoder file's tensors go

Detection asks the families in order (file name, then each file's FAMILIES order) and takes
the first that recognises a model; recognisers are written to be mutually exclusive, and the
tests check that each tiny fixture is recognised by exactly one family.
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

Shapes = Mapping[str, list[int]]  # tensor name -> shape, from a safetensors header


@dataclass(frozen=True)
class LatentFormat:
    """What the VAE's latents mean: the sampler works on (latent - shift) * scaling."""

    channels: int
    scaling_factor: float
    shift_factor: float = 0.0
    # A1111's "Approx cheap" preview: one RGB row per latent channel, and a bias added to each pixel.
    preview_rgb: tuple[tuple[float, float, float], ...] = ()
    preview_bias: tuple[float, float, float] = (0.0, 0.0, 0.0)
    # The other preview decoders' weights in models/VAE-approx: A1111's Approx NN file, TAESD's name.
    approx_nn_file: str = ""
    taesd_name: str = ""


@dataclass(frozen=True)
class TextEncoderLayout:
    """How prompts become embeddings (prompt weighting and clip skip follow it)."""

    # (tokenizer, text encoder) pipeline attributes, in the order their hidden states are concatenated.
    encoders: tuple[tuple[str, str], ...]
    # The encoder(s) whose pooled output is the pooled embedding: SDXL's second; SD3's two side by side.
    pooled_from: str | tuple[str, ...] | None = None
    # SDXL takes hidden states from the penultimate layer, with no final layer norm (as diffusers does);
    # SD 1.x/2.x take the last layer's output, and the final layer norm after a clip skip.
    starts_at_penultimate: bool = False
    zeros_for_empty_negative: bool = False  # honour the pipeline's force_zeros_for_empty_prompt
    # SD 1.x/2.x pipelines pass an attention mask when the encoder's config asks (use_attention_mask).
    honours_attention_mask: bool = True
    # The shallowest encoder's layers when no config says (single files): the highest clip skip.
    layers_without_config: int = 12
    # Per encoder: the key of its vectors in a textual-inversion file ("" a single tensor; SDXL's clip_l/clip_g),
    # and the name of its token embedding in a single-file checkpoint's header (its width without a config).
    embedding_keys: tuple[str, ...] = ("",)
    header_token_embeddings: tuple[str, ...] = ()
    # A T5 encoder (SD3, FLUX): its (tokenizer, text encoder) attributes and how many tokens it reads. T5 gets
    # the plain prompt (emphasis stripped); `assemble(pipe, clip, t5, t5_negative)` turns the CLIP results and
    # T5's hidden states into the pipeline's keyword arguments (None: T5 absent, as SD3 allows).
    t5: tuple[str, str] | None = None
    t5_max_length: int = 256
    assemble: Callable | None = None
    # An encoder that is neither CLIP nor T5 (Z-Image's Qwen3): `encode(pipe, prompts, negative_prompts)` gives
    # the pipeline's prompt keyword arguments itself (tensors, or lists of one tensor per prompt).
    encode: Callable | None = None

    @property
    def pooled_names(self) -> tuple[str, ...]:
        if self.pooled_from is None:
            return ()
        return (self.pooled_from,) if isinstance(self.pooled_from, str) else tuple(self.pooled_from)


@dataclass(frozen=True)
class ConfigFacts:
    """A diffusers model's configs, as detection reads them: `pipeline` is the pipeline class name,
    `components` maps a component to its [library, class] (None, None when absent), and
    `config(name)` reads one component's config (an empty dict when there is none)."""

    pipeline: str
    components: Mapping[str, Any]
    config: Callable[[str], dict]

    def has(self, component: str) -> bool:
        value = self.components.get(component)
        return isinstance(value, (list, tuple)) and len(value) == 2 and value[0] is not None


@dataclass(frozen=True)
class Family:
    name: str  # "sd1": what Architecture.family holds
    label: str  # "SD 1.x": what users see
    native_size: int  # the image side it was trained at, when no config tells
    # Diffusers pipeline class names by task: "txt2img" now, "img2img" and "inpaint" for from_pipe.
    pipelines: Mapping[str, str]
    components: tuple[str, ...]  # the pipeline's weight-holding components
    latent: LatentFormat
    text: TextEncoderLayout
    recognises_header: Callable[[Shapes], bool]  # a single file (original LDM layout)
    recognises_config: Callable[[ConfigFacts], bool]  # a diffusers folder or a loaded pipeline
    denoiser: str = "unet"  # the component each sampling step runs: "unet", or "transformer" (SD3, FLUX)
    vae: str = "vae"  # the component between latents and pictures
    header_problem: Callable[[Shapes], str | None] = lambda shapes: None  # why a recognised file is unusable
    is_inpainting_header: Callable[[Shapes], bool] = lambda shapes: False
    is_inpainting_config: Callable[[ConfigFacts], bool] = lambda facts: False
    # Default sampler settings: what a checkpoint's scheduler config leaves out is taken from here.
    scheduler: Mapping[str, Any] = field(default_factory=dict)
    # Pipeline components the app never loads (A1111 runs no safety checker), and options for that.
    skipped_components: tuple[str, ...] = ()
    load_options: Mapping[str, Any] = field(default_factory=dict)
    # Single-file loading: component name -> converter(module, its config, the file's tensors) -> state dict.
    converters: Mapping[str, Callable] = field(default_factory=dict)
    # Why a task has no pipeline here, in the user's words (the SDXL refiner only refines); and why a feature does
    # not apply: "clip skip" (FLUX, Z-Image: refused when a job asks, the setting gives way), "prompt editing".
    refusals: Mapping[str, str] = field(default_factory=dict)
    # SAI model-spec "modelspec.architecture" prefixes naming this family in file metadata.
    modelspec: tuple[str, ...] = ()
    # What the denoiser takes besides the text states, as (positive, negative) `added_cond_kwargs`, from
    # encode_prompts' output and the picture's (width, height): SDXL's pooled text and size ids. None: nothing.
    # The refiner switch (modules/capabilities/refiner_switch.py) builds its model's conditioning with it.
    added_conditions: Callable[[Mapping[str, Any], int, int], tuple[dict, dict]] | None = None

    def denoiser_of(self, pipe):
        return getattr(pipe, self.denoiser)

    def vae_of(self, pipe):
        return getattr(pipe, self.vae)
    # Which samplers make sense: "diffusion" (A1111's list) or "flow" (flow matching: SD3, FLUX), and the
    # names of that list this family offers (empty: all of them). modules/generation/samplers.py.
    sampler_kind: str = "diffusion"
    sampler_names: tuple[str, ...] = ()
    # What a new job on this family starts from in the UI (steps; CFG scale, 1 = off for FLUX).
    default_steps: int = 20
    default_cfg_scale: float = 7.0
    # "cfg": the pipeline's guidance_scale is classifier-free guidance. "true_cfg" (FLUX): guidance_scale is the
    # distilled guidance, and CFG with the negative prompt is the pipeline's true_cfg_scale (generation/guidance.py).
    # "cfg_minus_one" (Z-Image): guidance_scale g gives pos + g·(pos − neg), the CFG scale minus one (0 = off).
    guidance_kind: str = "cfg"
    # FLUX dev's guidance embedding: the model takes a distilled guidance value (Forge's "Distilled CFG Scale").
    distilled_guidance: bool = False
    # Latents as the pipeline's call takes and returns them (FLUX packs 2x2 patches into a sequence):
    # pack(latents (B, C, H, W), pipe) and unpack(pipeline latents, pipe, height, width) -> (B, C, H, W).
    pack_latents: Callable[[Any, Any], Any] = lambda latents, pipe: latents
    unpack_latents: Callable[[Any, Any, int, int], Any] = lambda latents, pipe, height, width: latents
    # What the picture's sides must be a multiple of (FLUX: 16, its 8× VAE latents packed in 2×2 patches).
    size_multiple: int = 8
    # Component files a checkpoint of this family may lack, and the pipeline components each fills:
    # {component: what users call it ("T5-XXL text encoder")}; optional ones may stay empty (SD3's T5).
    component_files: Mapping[str, str] = field(default_factory=dict)
    optional_components: tuple[str, ...] = ()
    # The components a single file holds weights for (None: all of them, as SD 1.x/2.x/SDXL files do).
    components_in_file: Callable[[Shapes], set[str]] | None = None
    # Where a whole checkpoint holds each component that may come from a file of its own, and what kind of
    # file that is: {component: ("vae" | "clip" | "t5", prefix)} (modules/models/component_files.py).
    component_sources: Mapping[str, tuple[str, str]] = field(default_factory=dict)

    def missing_from_file(self, shapes: Shapes) -> tuple[str, ...]:
        """The components a single file lacks (optional ones too: SD3's T5 may be added from a file)."""
        if self.components_in_file is None:
            return ()
        found = self.components_in_file(shapes)
        return tuple(c for c in self.components if c not in found)

    def pipeline_name(self, task: str) -> str | None:
        return self.pipelines.get(task)

    def scheduler_config(self, checkpoint_config: Mapping[str, Any]) -> dict:
        """The checkpoint's scheduler config over this family's defaults."""
        return {**self.scheduler, **checkpoint_config}


def _discover() -> list[Family]:
    """The FAMILIES of every module in this package, modules in name order. Only this package's own
    files are imported (nothing a model file names)."""
    found: list[Family] = []
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module.name.startswith("_"):
            continue  # shared helpers (_ldm.py), not families
        found.extend(importlib.import_module(f"{__name__}.{module.name}").FAMILIES)
    return found


FAMILIES: list[Family] = _discover()


def register(family: Family) -> None:
    """Add a family after the built-in ones (tests; a family defined outside this package)."""
    if any(f.name == family.name for f in FAMILIES):
        raise ValueError(f"a family named {family.name!r} is already registered")
    FAMILIES.append(family)


def by_name(name: str) -> Family:
    for family in FAMILIES:
        if family.name == name:
            return family
    raise KeyError(f"no model family named {name!r}")


def recognise_header(shapes: Shapes) -> Family | None:
    return next((f for f in FAMILIES if f.recognises_header(shapes)), None)


def recognise_config(facts: ConfigFacts) -> Family | None:
    return next((f for f in FAMILIES if f.recognises_config(facts)), None)


def family_of(pipe) -> Family | None:
    """The family of a loaded diffusers pipeline, from its class and components' configs."""
    def config(name: str) -> dict:
        module = getattr(pipe, name, None)
        found = getattr(module, "config", None)
        if found is None:
            return {}
        return found.to_dict() if hasattr(found, "to_dict") else dict(found)

    return recognise_config(ConfigFacts(type(pipe).__name__, dict(pipe.config), config))


def with_modelspec(architecture: str) -> Family | None:
    """The family an SAI model-spec architecture ("stable-diffusion-xl-v1-base/vae") names."""
    return next((f for f in FAMILIES for prefix in f.modelspec
                 if architecture == prefix or architecture.startswith(prefix + "/")), None)


def labels() -> list[str]:
    return [f.label for f in FAMILIES]
