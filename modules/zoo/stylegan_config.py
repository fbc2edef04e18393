"""A StyleGAN network's settings, from NVIDIA's init arguments (`G._init_kwargs` of a network pickle) or
from our `.safetensors` metadata, checked against what our generators support.

    StyleGANConfig(architecture, z_dim, c_dim, w_dim, img_resolution, img_channels, mapping, synthesis)

`mapping` holds `mapping_kwargs`; `synthesis` the rest (StyleGAN2-ADA-pytorch nests them as
`synthesis_kwargs`, StyleGAN3's code passes them flat). A setting we do not know would change the
picture, so it is refused by name; settings that only matter to training are dropped.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

ARCHITECTURES = ("stylegan2", "stylegan3")
TOP = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")
NUMBER = (int, float)
OPTIONAL_NUMBER = (int, float, type(None))
# name -> accepted types, per architecture
MAPPING = {
    "stylegan2": {"num_layers": int, "embed_features": (int, type(None)), "layer_features": (int, type(None)),
                  "activation": str, "lr_multiplier": NUMBER, "w_avg_beta": OPTIONAL_NUMBER},
    "stylegan3": {"num_layers": int, "lr_multiplier": NUMBER, "w_avg_beta": OPTIONAL_NUMBER},
}
SYNTHESIS = {
    "stylegan2": {"channel_base": int, "channel_max": int, "num_fp16_res": int, "architecture": str,
                  "resample_filter": list, "conv_clamp": OPTIONAL_NUMBER, "kernel_size": int, "use_noise": bool,
                  "activation": str},
    "stylegan3": {"channel_base": int, "channel_max": int, "num_layers": int, "num_critical": int,
                  "first_cutoff": NUMBER, "first_stopband": NUMBER, "last_stopband_rel": NUMBER,
                  "margin_size": int, "output_scale": NUMBER, "num_fp16_res": int, "conv_kernel": int,
                  "filter_size": int, "lrelu_upsampling": int, "use_radial_filters": bool,
                  "conv_clamp": OPTIONAL_NUMBER},
}
# Training-only or memory-layout settings: they do not change a generated image.
IGNORED = {"fused_modconv_default", "fp16_channels_last", "channels_last", "magnitude_ema_beta"}
LIMITS = {"z_dim": 4096, "c_dim": 100_000, "w_dim": 4096, "img_resolution": 4096, "img_channels": 4}


class ConfigError(ValueError):
    """A setting we cannot honour; the message names it."""


@dataclass(frozen=True)
class StyleGANConfig:
    architecture: str
    z_dim: int
    c_dim: int
    w_dim: int
    img_resolution: int
    img_channels: int
    mapping: dict = field(default_factory=dict)
    synthesis: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def _plain(value):
    """numpy scalars, tuples and EasyDicts of a pickle as JSON-able Python values."""
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        value = value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _checked(kwargs: dict, allowed: dict, where: str) -> dict:
    out = {}
    for name, value in kwargs.items():
        if name in IGNORED:
            continue
        if name not in allowed:
            raise ConfigError(f"{where} setting {name!r} is not supported (it would change the picture)")
        types = allowed[name]
        if isinstance(value, bool) and types is not bool and bool not in (types if isinstance(types, tuple) else ()):
            raise ConfigError(f"{where} setting {name!r} must be {_type_name(types)}, not {value!r}")
        if not isinstance(value, types):
            raise ConfigError(f"{where} setting {name!r} must be {_type_name(types)}, not {type(value).__name__}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{where} setting {name!r} is not finite")
        out[name] = value
    return out


def _type_name(types) -> str:
    types = types if isinstance(types, tuple) else (types,)
    return " or ".join("none" if t is type(None) else t.__name__ for t in types)


def config_from_init_kwargs(architecture: str, kwargs: dict) -> StyleGANConfig:
    """From NVIDIA's `Generator(**init_kwargs)`; ConfigError naming the setting that does not fit."""
    if architecture not in ARCHITECTURES:
        raise ConfigError(f"architecture {architecture!r} is not one of {', '.join(ARCHITECTURES)}")
    kwargs = _plain(dict(kwargs))
    missing = [name for name in TOP if name not in kwargs]
    if missing:
        raise ConfigError(f"the generator's settings lack {', '.join(missing)}")
    top = {}
    for name in TOP:
        value = kwargs.pop(name)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= LIMITS[name]:
            raise ConfigError(f"{name} must be a whole number from 0 to {LIMITS[name]}, not {value!r}")
        top[name] = value
    if top["img_resolution"] < 4 or top["img_channels"] < 1 or top["w_dim"] < 1 or top["z_dim"] + top["c_dim"] < 1:
        raise ConfigError("img_resolution, img_channels, w_dim and z_dim + c_dim are too small")
    mapping = kwargs.pop("mapping_kwargs", None) or {}
    nested = "synthesis_kwargs" in kwargs  # StyleGAN2-ADA-pytorch nests them; StyleGAN3's code does not
    synthesis = dict(kwargs.pop("synthesis_kwargs", None) or {})
    synthesis.update(kwargs)
    if architecture == "stylegan2" and "conv_clamp" not in synthesis:
        synthesis["conv_clamp"] = None if nested else 256  # the two code bases' defaults differ
    if not isinstance(mapping, dict):
        raise ConfigError("mapping_kwargs must be a dict")
    config = StyleGANConfig(architecture, **top, mapping=_checked(mapping, MAPPING[architecture], "mapping"),
                            synthesis=_checked(synthesis, SYNTHESIS[architecture], "synthesis"))
    _check_sizes(config)
    return config


def config_from_json(text: str) -> StyleGANConfig:
    """From our metadata (zoo_config); ConfigError naming what is wrong."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"zoo_config is not valid JSON ({error})") from None
    if not isinstance(raw, dict):
        raise ConfigError("zoo_config must be a JSON object")
    unknown = sorted(set(raw) - {"architecture", *TOP, "mapping", "synthesis"})
    if unknown:
        raise ConfigError(f"unknown config keys {unknown}")
    kwargs = {name: raw.get(name) for name in TOP if name in raw}
    return config_from_init_kwargs(str(raw.get("architecture")), {
        **kwargs, "mapping_kwargs": raw.get("mapping") or {}, "synthesis_kwargs": raw.get("synthesis") or {}})


def _check_sizes(config: StyleGANConfig) -> None:
    s, m = config.synthesis, config.mapping
    r = config.img_resolution
    if config.architecture == "stylegan2":
        if r & (r - 1):
            raise ConfigError(f"img_resolution {r} is not a power of two")
        if s.get("architecture", "skip") not in ("orig", "skip", "resnet"):
            raise ConfigError(f"synthesis architecture {s['architecture']!r} is not orig, skip or resnet")
        if s.get("activation", "lrelu") not in ("lrelu", "relu", "linear") or \
                m.get("activation", "lrelu") not in ("lrelu", "relu", "linear"):
            raise ConfigError("activation must be lrelu, relu or linear")
        if not 1 <= s.get("kernel_size", 3) <= 7:
            raise ConfigError("kernel_size must be 1 to 7")
    else:
        if not 1 <= s.get("num_layers", 14) <= 64 or not 0 <= s.get("num_critical", 2) < s.get("num_layers", 14):
            raise ConfigError("num_layers must be 1 to 64 and num_critical below it")
        if not 1 <= s.get("conv_kernel", 3) <= 7 or not 1 <= s.get("filter_size", 6) <= 16 \
                or not 1 <= s.get("lrelu_upsampling", 2) <= 4 or not 0 <= s.get("margin_size", 10) <= 256:
            raise ConfigError("conv_kernel, filter_size, lrelu_upsampling or margin_size is out of range")
    if not 1 <= m.get("num_layers", 8) <= 64:
        raise ConfigError("mapping num_layers must be 1 to 64")
    if not 1 <= s.get("channel_base", 32768) <= 2**20 or not 1 <= s.get("channel_max", 512) <= 4096:
        raise ConfigError("channel_base or channel_max is out of range")
