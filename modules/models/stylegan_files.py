"""StyleGAN2/3 generators from NVIDIA's network pickles (read by stylegan_pickle.py, nothing in them run) and
from our converted `.safetensors` files, which need no pickle at all.

A converted file is one .safetensors with NVIDIA's tensor names and this metadata:
    zoo_kind           "gan"
    zoo_architecture   "stylegan2" or "stylegan3"
    zoo_config         JSON: StyleGANConfig (z_dim, c_dim, w_dim, img_resolution, img_channels, mapping, synthesis)
    zoo_info           JSON: where it came from (file name, its sha256, G_ema or G, the class name and the
                       sha256 of the module source the pickle carried)
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from modules.atomic_files import replacing
from modules.errors import BadModelFile
from modules.models.building import BUILD_LOCK
from modules.models.stylegan_pickle import PersistentObject, generator_of, load_network_pickle
from modules.zoo.model_files import FORMAT_VERSION, read_info, read_metadata
from modules.zoo.stylegan_config import ConfigError, StyleGANConfig, config_from_init_kwargs, config_from_json

PICKLE_SUFFIXES = (".pkl", ".pickle")
MAX_TENSOR_ELEMENTS = 2**31  # a 1024² StyleGAN3-R generator has about 2**24


def build_generator(config: StyleGANConfig, design_filters: bool = False) -> torch.nn.Module:
    """An untrained generator of this architecture (a file's tensors then replace every weight)."""
    if config.architecture == "stylegan2":
        from modules.zoo.stylegan2 import Generator
        return Generator(config)
    from modules.zoo.stylegan3 import Generator
    return Generator(config, design_filters=design_filters)


def architecture_of(path: Path, network: PersistentObject, tensors: dict) -> str:
    """From the weights' names, not from the class name the file claims."""
    if network.class_name.rsplit(".", 1)[-1] != "Generator":
        raise BadModelFile(path, f"the network is a {network.class_name!r}, not a StyleGAN Generator")
    if "synthesis.input.freqs" in tensors:
        return "stylegan3"
    if "synthesis.b4.const" in tensors:
        return "stylegan2"
    raise BadModelFile(path, "neither a StyleGAN2 nor a StyleGAN3 generator (no synthesis.b4.const or "
                             "synthesis.input.freqs weights)")


def assign_weights(path: Path, generator: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Every weight by name; the names and shapes must be exactly the architecture's."""
    expected = generator.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise BadModelFile(path, f"weights do not match the generator's settings: missing {missing[:3]}, "
                                 f"unexpected {unexpected[:3]}")
    for name, tensor in expected.items():
        if tuple(tensors[name].shape) != tuple(tensor.shape):
            raise BadModelFile(path, f"weight {name!r} has shape {tuple(tensors[name].shape)}, "
                                     f"the settings need {tuple(tensor.shape)}")
        if not tensors[name].is_floating_point():
            raise BadModelFile(path, f"weight {name!r} is not a floating-point tensor")
    generator.load_state_dict({k: v.to(torch.float32) for k, v in tensors.items()})
    if not all(torch.isfinite(t).all() for t in generator.state_dict().values()):
        raise BadModelFile(path, "a weight is not finite")


def _config(path: Path, architecture: str, kwargs: dict) -> StyleGANConfig:
    try:
        return config_from_init_kwargs(architecture, kwargs)
    except ConfigError as error:
        raise BadModelFile(path, str(error)) from None


def _build(path: Path, config: StyleGANConfig, tensors: dict) -> torch.nn.Module:
    if sum(t.numel() for t in tensors.values()) > MAX_TENSOR_ELEMENTS:
        raise BadModelFile(path, "too many weights for a StyleGAN generator")
    with BUILD_LOCK:  # not while another thread's load has meta-device patches on (building.py)
        generator = build_generator(config)
    assign_weights(path, generator, tensors)
    return generator.eval().requires_grad_(False)


def read_pickle_generator(path: str | Path) -> tuple[torch.nn.Module, dict]:
    """(generator, where it came from) from an NVIDIA network pickle: G_ema when present, else G."""
    path = Path(path)
    network, which = generator_of(path, load_network_pickle(path))
    tensors = network.tensors()
    architecture = architecture_of(path, network, tensors)
    config = _config(path, architecture, network.init_kwargs)
    info = {"converted_from": path.name, "network": which, "class_name": network.class_name,
            "module_src_sha256": network.module_src_sha256}
    return _build(path, config, tensors), info


def read_converted_generator(path: str | Path, metadata: dict | None = None) -> torch.nn.Module:
    """A generator from our converted .safetensors (no pickle needed)."""
    from safetensors.torch import load_file
    path = Path(path)
    metadata = read_metadata(path) if metadata is None else metadata
    if metadata.get("zoo_kind") != "gan" or "zoo_config" not in metadata:
        raise BadModelFile(path, "no zoo_kind gan / zoo_config metadata: not a converted StyleGAN file")
    try:
        config = config_from_json(metadata["zoo_config"])
    except ConfigError as error:
        raise BadModelFile(path, str(error)) from None
    if config.architecture != metadata.get("zoo_architecture"):
        raise BadModelFile(path, "zoo_architecture and zoo_config disagree")
    generator = _build(path, config, load_file(str(path)))
    generator.source = read_info(path, metadata)
    return generator


def is_stylegan_file(metadata: dict) -> bool:
    return metadata.get("zoo_architecture") in ("stylegan2", "stylegan3")


def save_converted(generator: torch.nn.Module, out: str | Path, info: dict | None = None) -> Path:
    """Write `generator` as our self-describing .safetensors (atomically)."""
    from safetensors.torch import save_file
    out = Path(out)
    metadata = {"zoo_kind": "gan", "zoo_architecture": generator.config.architecture,
                "zoo_config": generator.config.to_json(), "zoo_format_version": FORMAT_VERSION}
    if info:
        metadata["zoo_info"] = json.dumps(info)
    tensors = {k: v.detach().to(torch.float32).contiguous().clone() for k, v in generator.state_dict().items()}
    with replacing(out) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return out


def convert_pickle(source: str | Path, out: str | Path | None = None) -> Path:
    """NVIDIA pickle -> our .safetensors beside it (or at `out`); the pickle is not needed afterwards."""
    from modules.models.hashing import _hash_file
    source = Path(source)
    generator, info = read_pickle_generator(source)
    info["source_sha256"] = _hash_file(source)
    out = Path(out) if out is not None else source.with_suffix(".safetensors")
    if out.resolve() == source.resolve():
        raise BadModelFile(source, "the converted file would replace the pickle: give another name")
    return save_converted(generator, out, info)
