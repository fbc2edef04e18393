"""Which torch device and dtype the models run on, from the --device/--precision flags."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from modules import cpu_speed

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class DeviceConfig:
    device: torch.device
    dtype: torch.dtype
    vae_dtype: torch.dtype
    offload: str  # "none", "model" (--medvram) or "sequential" (--lowvram)
    channels_last: bool = False  # UNet and VAE in channels_last memory format (faster convolutions where measured)
    compile: str | None = None  # --compile: the denoiser through torch.compile with this backend ("inductor")
    fused_projections: bool = True  # fuse QKV projections where `fuse_qkv` says (False: benchmarks' unfused runs)

    def describe(self) -> str:
        vae = f", VAE {self.vae_name}" if self.vae_dtype != self.dtype else ""
        compiled = f", compiled ({self.compile})" if self.compile else ""
        fused = ", fused QKV" if self.fuse_qkv else ""
        return f"{self.device.type} {self.precision_name}{vae}{', channels_last' if self.channels_last else ''}{fused}{compiled}"

    @property
    def fuse_qkv(self) -> bool:
        """Fused QKV projections (modules/models/fused_qkv.py): measured faster on a CPU, where the weights stay put.
        Not on an accelerator (unmeasured, and the cache's device moves re-point each weight on its own) nor
        under --compile (inductor makes its own graph; the fused path's layout checks would break it)."""
        return self.fused_projections and self.device.type == "cpu" and self.offload == "none" and self.compile is None

    @property
    def vae_name(self) -> str:
        return {v: k for k, v in DTYPES.items()}[self.vae_dtype]

    @property
    def precision_name(self) -> str:
        return {v: k for k, v in DTYPES.items()}[self.dtype]


def pick_device(name: str = "auto", device_id: int | None = None) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: no CUDA device is available (is the CUDA build of torch installed?)")
        return torch.device("cuda", device_id or 0)
    if name == "mps" and not torch.backends.mps.is_available():
        raise SystemExit("--device mps: Apple MPS is not available on this machine")
    return torch.device(name)


def device_config(device: str = "auto", device_id: int | None = None, precision: str = "fp32",
                  no_half_vae: bool = False, medvram: bool = False, lowvram: bool = False,
                  cache_dir: Path | None = None, compile: bool = False, fused_projections: bool = True) -> DeviceConfig:
    """The flags' config (webui.py passes --precision, "auto" by default; callers that name nothing get fp32,
    the same numbers on every machine). `cache_dir`: where --precision auto on a CPU remembers which path measured fastest on this machine."""
    dev = pick_device(device, device_id)
    channels_last = False
    if precision == "auto" and dev.type == "cpu":
        # bf16 weights where this CPU computes bf16 natively and it measured faster (modules/cpu_speed.py); the
        # VAE stays fp32 there: its output is the picture itself, and one decode is a small part of the time.
        path = cpu_speed.fastest_path(cache_dir)
        dtype = torch.float32 if path == "fp32" else torch.bfloat16
        channels_last = path.endswith("channels-last")
        no_half_vae = True
    elif precision == "auto":
        dtype = torch.float16  # half precision is the norm on GPUs
    else:
        dtype = DTYPES[precision]
    vae_dtype = torch.float32 if no_half_vae else dtype
    offload = "sequential" if lowvram else "model" if medvram else "none"
    if dev.type == "cpu":
        offload = "none"  # offload moves weights to an accelerator; on a CPU there is nothing to move
    return DeviceConfig(dev, dtype, vae_dtype, offload, channels_last, "inductor" if compile else None,
                        fused_projections)
