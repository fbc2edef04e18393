"""Separate component files: the VAE and text encoders a transformer-only checkpoint needs, as Forge has them.

People download FLUX.1 as BFL's transformer-only flux1-dev.safetensors plus ae.safetensors (models/VAE) and
clip_l / t5xxl files (models/text_encoder); SD 3.5 large as a file without its text encoders plus
clip_l, clip_g and t5xxl files. Which file is what is told from its tensors alone (a name says nothing
reliable): a VAE (encoder/decoder convolutions), a T5 encoder (encoder.block.*), a CLIP text encoder
(its position embedding, whose width tells CLIP-L 768 from CLIP-G 1280), a Qwen3 encoder (Z-Image's
qwen_3_4b: its layers' q norm). `complete()` pairs the picked files with what a checkpoint lacks, or says
precisely what is missing. Only files inside the folders are used; a name is looked up there, never opened as
a path of its own."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from modules.errors import BadModelFile, InvalidRequest, ModelNotFound
from modules.models.model_folders import ModelFile, ModelFolders
from modules.models.safetensors_header import read_header

SUFFIXES = (".safetensors",)
FIELD = "forge_additional_modules"  # Forge's override_settings key, and our request field

CLIP_POSITIONS = ("text_model.embeddings.position_embedding.weight", "embeddings.position_embedding.weight")
T5_BLOCK = "encoder.block.0.layer.0.SelfAttention.q.weight"
QWEN3_NORMS = ("model.layers.0.self_attn.q_norm.weight", "layers.0.self_attn.q_norm.weight")


def kind_of(path: Path) -> tuple[str, int | None]:
    """("vae" | "t5" | "clip" | "qwen3", width or None) from a file's tensor names and shapes; BadModelFile
    otherwise."""
    header, _ = read_header(path)
    shapes = {name: info["shape"] for name, info in header.items()}
    if "encoder.conv_in.weight" in shapes and "decoder.conv_in.weight" in shapes:
        return "vae", None
    if T5_BLOCK in shapes or ("shared.weight" in shapes and any(k.startswith("encoder.block.") for k in shapes)):
        return "t5", None
    for key in QWEN3_NORMS:  # Qwen3's per-head q norm (Qwen2 has none): Z-Image's qwen_3_4b files
        if key in shapes:
            embedding = shapes.get(key.split("layers.")[0] + "embed_tokens.weight") or [0, 0]
            return "qwen3", int(embedding[-1])
    for key in CLIP_POSITIONS:
        if key in shapes and len(shapes[key]) == 2:
            return "clip", int(shapes[key][1])
    raise BadModelFile(path, "is not a VAE, CLIP, T5 or Qwen3 text encoder file (none of their tensors found)")


class ComponentFiles(ModelFolders):
    """The component files of models/text_encoder and the VAE folders, listed by their path relative to their
    folder ("ae.safetensors", "flux/t5xxl_fp16.safetensors")."""

    def __init__(self, folders: list[Path]):
        super().__init__(folders, SUFFIXES, "component file")

    def find(self, wanted: object) -> ModelFile:
        """A file by its listed name, its name without extension, or a path whose file name is listed (Forge's
        API takes full paths: only the file name is used, inside our folders)."""
        if not isinstance(wanted, str) or not wanted.strip():
            raise InvalidRequest(FIELD, "must list file names of models/VAE and models/text_encoder")
        try:
            return super().find(wanted.strip())
        except ModelNotFound:
            raise InvalidRequest(FIELD, f"no component file {wanted.strip()!r} in models/VAE or models/text_encoder "
                                        f"(there: {', '.join(self.names()) or 'none'})") from None


def complete(info, picked: list[ModelFile]):
    """`info` (a CheckpointInfo) with `component_files` set: each file paired with a component its checkpoint
    lacks. BadModelFile names what is still missing; InvalidRequest names a file that fits nothing."""
    family = info.architecture.spec
    missing = list(info.architecture.missing)
    if not picked and not missing:
        return info
    if picked and not missing:
        raise InvalidRequest(FIELD, f"{info.name} has its own VAE and text encoders: it takes no component files")
    if info.sidecar_config is None:
        raise BadModelFile(info.path, f"needs its diffusers config folder beside it as {info.path.stem}.config/ "
                                      "(model_index.json, component configs, tokenizers) to be completed offline")
    paired: dict[str, tuple[Path, str]] = {}
    for component_file in picked:
        kind, width = kind_of(component_file.path)
        candidates = [c for c in missing if c not in paired and family.component_sources[c][0] == kind]
        if kind == "clip" and len(candidates) > 1:
            candidates = [c for c in candidates if _hidden_size(info.sidecar_config, c) == width]
        if not candidates:
            raise InvalidRequest(FIELD, f"{component_file.name} is a {_kind_label(kind, width)}, which "
                                        f"{info.name} does not need (it needs: {_labels(family, missing)})")
        paired[candidates[0]] = (component_file.path, family.component_sources[candidates[0]][1])
    still = [c for c in missing if c not in paired and c not in family.optional_components]
    if still:
        raise BadModelFile(info.path, f"needs a {_labels(family, still)}: pick "
                                      f"{'it' if len(still) == 1 else 'them'} in VAE / Text Encoder next to the "
                                      f"checkpoint (files of models/VAE and models/text_encoder; {FIELD} in the API)")
    return dataclasses.replace(info, component_files=paired)


def _hidden_size(config_dir: Path, component: str) -> int | None:
    try:
        return int(json.loads((config_dir / component / "config.json").read_text(encoding="utf8"))["hidden_size"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _kind_label(kind: str, width: int | None) -> str:
    return {"vae": "VAE", "t5": "T5 text encoder", "qwen3": f"Qwen3 text encoder (width {width})"}.get(
        kind, f"CLIP text encoder (width {width})")


def _labels(family, components: list[str]) -> str:
    return ", ".join(family.component_files.get(c, c) for c in components)
