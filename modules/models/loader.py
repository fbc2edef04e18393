"""Build a diffusers pipeline from a registered checkpoint. Only the model manager calls this."""
from __future__ import annotations

import logging

import torch

from modules.errors import BadModelFile
from modules.models import config_classes, fp8_storage, gguf_files, gguf_header, pickles
from modules.models.building import BUILD_LOCK
from modules.models.registry import CheckpointInfo

log = logging.getLogger(__name__)


def quiet_library_progress_bars() -> None:
    """Loading prints per-component progress bars to the console; the app has its own progress."""
    import diffusers
    import transformers

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()


def pipeline_class(info: CheckpointInfo, task: str = "txt2img"):
    """The diffusers pipeline class the checkpoint's family uses for `task`."""
    import diffusers

    arch = info.architecture
    if arch is None:
        raise BadModelFile(info.path, info.error or "architecture unknown")
    family = arch.spec
    if arch.inpainting and task != "inpaint":
        raise BadModelFile(info.path, f"inpainting checkpoints are for inpainting; pick a regular model for {task}")
    name = family.pipeline_name(task)
    if name is None:
        raise BadModelFile(info.path, family.refusals.get(task, f"{family.label} models cannot do {task}"))
    # The name comes from our own family files, never from a model file.
    return getattr(diffusers, name)


def load_pipeline(info: CheckpointInfo, dtype: torch.dtype, offline: bool, skeletons=None,
                  fp8: torch.dtype | None = None):
    """Load on the CPU in `dtype`; the manager decides where it runs. A single file with a sidecar
    config takes its modules from `skeletons` (a SkeletonPool) when one of its architecture waits there.
    `fp8` (fp8_storage.storage_dtype): the denoiser's weights are kept in that dtype, computed in `dtype`."""
    with BUILD_LOCK:  # no other thread may build a module while this load's meta-device patches are on
        pipe = _load_pipeline(info, dtype, offline, skeletons, fp8)
    if fp8 is not None:
        fp8_storage.store(info.architecture.spec.denoiser_of(pipe), fp8, dtype)
    for name, storage in _fp8_component_files(info).items():
        if getattr(pipe, name, None) is not None:
            fp8_storage.store_text_encoder(getattr(pipe, name), storage, dtype)
    return pipe


def _fp8_component_files(info: CheckpointInfo) -> dict[str, torch.dtype]:
    """{component: fp8 dtype} for the text encoder files stored in fp8 (t5xxl_fp8_e4m3fn): read and kept in fp8
    (a VAE file is widened at load, as before)."""
    found = {}
    for name, (path, _) in (info.component_files or {}).items():
        storage = fp8_storage.file_storage(path) if name.startswith("text_encoder") else None
        if storage is not None:
            found[name] = storage
    return found


def loaded_task(info: CheckpointInfo) -> str:
    """The task a checkpoint's cached pipeline is built for: an inpainting checkpoint's UNet takes a mask and
    a masked picture besides the latents, so it is cached as an inpaint pipeline (txt2img refuses it); a family
    without txt2img (the SDXL refiner) is cached as its img2img pipeline."""
    if info.architecture is None:
        return "txt2img"
    if info.architecture.inpainting:
        return "inpaint"
    return "txt2img" if info.architecture.spec.pipeline_name("txt2img") is not None else "img2img"


def _load_pipeline(info: CheckpointInfo, dtype: torch.dtype, offline: bool, skeletons=None,
                   fp8: torch.dtype | None = None):
    cls = pipeline_class(info, loaded_task(info))
    missing = [c for c in info.architecture.missing_labels() if c not in _labels_given(info)]
    if missing:  # the manager pairs component files first (component_files.complete): this is a direct call
        raise BadModelFile(info.path, f"needs a {', '.join(missing)} from component files (models/VAE, "
                                      "models/text_encoder)")
    quiet_library_progress_bars()
    # not torch_dtype: diffusers 0.42 warns that name is deprecated. The family's options leave out
    # what the app never runs (a safety checker).
    common: dict = dict(dtype=dtype, **info.architecture.spec.load_options)
    try:
        # Checked again at load (the files may have changed since the scan): only diffusers' and
        # transformers' own classes, the pipeline class is ours, no code file where diffusers would look.
        if info.layout == "diffusers":
            index = config_classes.check_model_index(info.path, info.path)
            return cls.from_pretrained(str(info.path), local_files_only=True, trust_remote_code=False,
                                       **common, **_left_out(info.architecture.spec, index))
        if gguf_files.is_gguf(info.path):
            return _load_gguf(info, dtype, skeletons)
        if info.path.suffix.lower() != ".safetensors":
            pickles.load_pickle_state_dict(info.path)  # refuses code payloads before diffusers sees the file
        if info.sidecar_config is not None and info.path.suffix.lower() == ".safetensors":
            # Our own cold load: header first, modules built on the meta device, each needed byte read
            # once (in parallel) straight into the buffers the weights then live in.
            from modules.models import fast_load

            return fast_load.load_single_file_with_report(info.path, info.sidecar_config, dtype, pipeline_class=cls,
                                                          skeletons=skeletons, family=info.architecture.spec,
                                                          component_files=info.component_files,
                                                          keep_fp8=((info.architecture.spec.denoiser,) if fp8 else ())
                                                          + tuple(_fp8_component_files(info)),
                                                          ).pipeline
        if info.sidecar_config is not None:
            config_classes.check_model_index(info.sidecar_config, info.path)
            return cls.from_single_file(str(info.path), config=str(info.sidecar_config), local_files_only=True, **common)
        return cls.from_single_file(str(info.path), local_files_only=offline, **common)
    except BadModelFile:
        raise
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        hint = ""
        if info.layout == "single_file" and info.sidecar_config is None:
            hint = (f" — to load it offline, put its diffusers config folder beside it as "
                    f"{info.path.stem}.config/ (model_index.json, component configs, tokenizer)")
        raise BadModelFile(info.path, f"could not be loaded: {_first_line(e)}{hint}") from e


def _load_gguf(info: CheckpointInfo, dtype: torch.dtype, skeletons):
    """A GGUF transformer (kept quantised, computed in `dtype`) with the VAE and text encoders of its
    component files, read as a transformer-only .safetensors file's are."""
    from modules.models import fast_load

    if info.sidecar_config is None:
        raise BadModelFile(info.path, f"needs its diffusers config folder beside it as {info.path.stem}.config/ "
                                      "(model_index.json, component configs, tokenizers) to be loaded offline")
    family = info.architecture.spec
    transformer = gguf_files.load_transformer(info.path, info.sidecar_config, family, dtype)
    shapes = gguf_header.read_header(info.path).shapes()
    return fast_load.load_single_file_with_report(
        info.path, info.sidecar_config, dtype, pipeline_class=pipeline_class(info, loaded_task(info)),
        skeletons=skeletons, family=family, component_files=info.component_files,
        prebuilt={family.denoiser: transformer}, shapes=shapes, keep_fp8=tuple(_fp8_component_files(info))).pipeline


def _labels_given(info: CheckpointInfo) -> list[str]:
    spec = info.architecture.spec
    return [spec.component_files.get(c, c) for c in (info.component_files or {})]


def _left_out(family, index: dict) -> dict:
    """None for the optional components a folder does not have (SD3 without T5), and for their tokenizers:
    diffusers wants them named to build the pipeline without them."""
    def has(name: str) -> bool:
        value = index.get(name)
        return isinstance(value, (list, tuple)) and len(value) == 2 and value[0] is not None

    missing = {}
    for name in family.optional_components:
        if not has(name):
            missing[name] = None
            pairs = (*family.text.encoders, *([family.text.t5] if family.text.t5 else []))
            missing.update({tokenizer: None for tokenizer, encoder in pairs if encoder == name})
    return missing


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0][:300] if text else type(e).__name__
