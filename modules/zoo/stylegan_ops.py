"""The signal operations StyleGAN2 and StyleGAN3 are built from, in plain PyTorch (no custom CUDA build).

    bias_act(x, b, act, gain, clamp)          bias, activation, gain, clamp, in that order
    upfirdn2d(x, f, up, down, padding, gain)  upsample by zero insertion, pad, FIR-filter, keep every down-th pixel
    filtered_lrelu(x, fu, fd, b, up, down, padding, gain, slope, clamp)
                                              StyleGAN3's alias-free activation: bias, upsample with fu,
                                              leaky ReLU, clamp, downsample with fd
    fully_connected(x, weight, bias, weight_gain, bias_gain, act)
                                              the equalised-learning-rate dense layer

Filters are convolutions (flipped before torch's correlation), 1-D filters are separable, and gains are
applied to the filter, as in the papers' definitions, so the numbers agree with NVIDIA's reference
implementations to float rounding.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SQRT2 = math.sqrt(2.0)


def bias_act(x: torch.Tensor, b: torch.Tensor | None = None, act: str = "linear", alpha: float = 0.2,
             gain: float | None = None, clamp: float | None = None, dim: int = 1) -> torch.Tensor:
    if b is not None:
        x = x + b.reshape([-1 if i == dim else 1 for i in range(x.ndim)])
    if act == "lrelu":
        x = F.leaky_relu(x, alpha)
        gain = SQRT2 if gain is None else gain
    elif act == "relu":
        x = F.relu(x)
        gain = SQRT2 if gain is None else gain
    elif act != "linear":
        raise ValueError(f"activation {act!r} is not supported")
    if gain is not None and gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


def fully_connected(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, weight_gain: float,
                    bias_gain: float, act: str = "linear") -> torch.Tensor:
    w = weight.to(x.dtype) * weight_gain
    b = None if bias is None else bias.to(x.dtype) * bias_gain if bias_gain != 1 else bias.to(x.dtype)
    if act == "linear" and b is not None:
        return torch.addmm(b.unsqueeze(0), x, w.t())
    return bias_act(x.matmul(w.t()), b, act)


def _padding(padding) -> tuple[int, int, int, int]:
    """[x0, x1, y0, y1] from an int, [x, y] or [x0, x1, y0, y1]."""
    if isinstance(padding, int):
        return padding, padding, padding, padding
    if len(padding) == 2:
        return padding[0], padding[0], padding[1], padding[1]
    return tuple(padding)


def upfirdn2d(x: torch.Tensor, f: torch.Tensor | None, up: int = 1, down: int = 1, padding=0,
              gain: float = 1.0) -> torch.Tensor:
    """Upsample (zero insertion), pad (negative: crop), convolve with the FIR filter f, downsample."""
    n, c, h, w = x.shape
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    x0, x1, y0, y1 = _padding(padding)
    if up > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(n, c, h * up, w * up)
    x = F.pad(x, [max(x0, 0), max(x1, 0), max(y0, 0), max(y1, 0)])
    x = x[:, :, max(-y0, 0): x.shape[2] - max(-y1, 0), max(-x0, 0): x.shape[3] - max(-x1, 0)]
    # A filter's gain multiplies the whole 2-D response: a separable filter takes its square root per axis.
    f = (f * gain ** (f.ndim / 2)).to(x.dtype).flip(list(range(f.ndim)))
    # Downsampling is the convolution's stride: only the kept outputs are computed (the same numbers as filtering
    # everything and taking every down-th, at 1/down of the work per axis).
    if f.ndim == 2:
        return F.conv2d(x, f[None, None].expand(c, 1, *f.shape), groups=c, stride=down)
    x = F.conv2d(x, f[None, None, None, :].expand(c, 1, 1, -1), groups=c, stride=(1, down))
    return F.conv2d(x, f[None, None, :, None].expand(c, 1, -1, 1), groups=c, stride=(down, 1))


def filter_size(f: torch.Tensor | None) -> tuple[int, int]:
    if f is None:
        return 1, 1
    return (f.shape[-1], f.shape[0]) if f.ndim == 2 else (f.shape[0], f.shape[0])


def upsample2d(x: torch.Tensor, f: torch.Tensor, up: int = 2) -> torch.Tensor:
    fw, fh = filter_size(f)
    return upfirdn2d(x, f, up=up, padding=[(fw + up - 1) // 2, (fw - up) // 2, (fh + up - 1) // 2, (fh - up) // 2],
                     gain=up * up)


def filtered_lrelu(x: torch.Tensor, fu: torch.Tensor | None, fd: torch.Tensor | None, b: torch.Tensor | None,
                   up: int, down: int, padding, gain: float, slope: float, clamp: float | None) -> torch.Tensor:
    x = bias_act(x, b)
    x = upfirdn2d(x, fu, up=up, padding=padding, gain=up * up)
    x = bias_act(x, act="lrelu", alpha=slope, gain=gain, clamp=clamp)
    return upfirdn2d(x, fd, down=down)
