"""Which torch device and dtype the models run on, from the --device/--precision flags."""
from __future__ import annotations

from dataclasses import dataclass

import torch

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class DeviceConfig:
    device: torch.device
    dtype: torch.dtype
    vae_dtype: torch.dtype
    offload: str  # "none", "model" (--medvram) or "sequential" (--lowvram)

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


def device_config(device: str = "auto", device_id: int | None = None, precision: str = "auto",
                  no_half_vae: bool = False, medvram: bool = False, lowvram: bool = False) -> DeviceConfig:
    dev = pick_device(device, device_id)
    if precision == "auto":
        # Half precision is the norm on GPUs; on a CPU it is slow or unsupported, so stay in fp32.
        dtype = torch.float16 if dev.type in ("cuda", "mps") else torch.float32
    else:
        dtype = DTYPES[precision]
    vae_dtype = torch.float32 if no_half_vae else dtype
    offload = "sequential" if lowvram else "model" if medvram else "none"
    if dev.type == "cpu":
        offload = "none"  # offload moves weights to an accelerator; on a CPU there is nothing to move
    return DeviceConfig(dev, dtype, vae_dtype, offload)
