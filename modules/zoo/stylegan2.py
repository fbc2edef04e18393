"""StyleGAN2 generator (Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN"), as trained
by NVIDIA's StyleGAN2-ADA-pytorch and StyleGAN3 code bases, written from the paper for inference.

    mapping(z [N,z_dim], c, truncation_psi, truncation_cutoff) -> ws [N,num_ws,w_dim]
        z normalised (and the class embedding, when c_dim > 0), an MLP of equalised-lr layers, the result
        repeated per layer; layers before the cutoff pulled towards w_avg by ψ (lerp)
    synthesis(ws, noise_mode="const") -> images [N,img_channels,R,R], about [-1,1]
        a learned 4x4 constant, then per resolution 8..R a block: a 2x upsampling modulated 3x3 conv and a
        modulated 3x3 conv (each: style = affine(w), weights scaled by the style and demodulated, noise,
        bias, leaky ReLU, clamp); images summed from per-block ToRGB outputs ("skip"), or taken from the
        last block ("orig", "resnet": with a 1x1 upsampling shortcut)

Module and tensor names are NVIDIA's (`synthesis.b64.conv0.affine.weight`), so a network pickle's weights
load by name. The settings come from the network's init arguments (modules/zoo/stylegan_config.py).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from modules.zoo.stylegan_ops import bias_act, fully_connected, upfirdn2d, upsample2d, filter_size
from modules.zoo.stylegan_config import StyleGANConfig


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


def _resample_filter(taps) -> torch.Tensor:
    """The normalised 2-D low-pass filter of a tap list such as [1,3,3,1] (replaced by the file's own)."""
    f = torch.as_tensor(taps, dtype=torch.float32)
    f = f.ger(f) if f.ndim == 1 else f
    return f / f.sum()


class FullyConnectedLayer(nn.Module):
    def __init__(self, in_features: int, out_features: int, bias: bool = True, activation: str = "linear",
                 lr_multiplier: float = 1.0, bias_init: float = 0.0):
        super().__init__()
        self.activation = activation
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fully_connected(x, self.weight, self.bias, self.weight_gain, self.bias_gain, self.activation)


class MappingNetwork(nn.Module):
    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int, num_layers: int = 8,
                 embed_features: int | None = None, layer_features: int | None = None, activation: str = "lrelu",
                 lr_multiplier: float = 0.01, w_avg_beta: float | None = 0.998):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws, self.num_layers = z_dim, c_dim, w_dim, num_ws, num_layers
        embed_features = 0 if c_dim == 0 else (w_dim if embed_features is None else embed_features)
        layer_features = w_dim if layer_features is None else layer_features
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            setattr(self, f"fc{idx}", FullyConnectedLayer(features[idx], features[idx + 1], activation=activation,
                                                          lr_multiplier=lr_multiplier))
        self.register_buffer("w_avg", torch.zeros([w_dim]) if w_avg_beta is not None else None)

    def forward(self, z, c, truncation_psi: float = 1.0, truncation_cutoff: int | None = None) -> torch.Tensor:
        parts = []
        if self.z_dim > 0:
            parts.append(normalize_2nd_moment(z.to(torch.float32)))
        if self.c_dim > 0:
            parts.append(normalize_2nd_moment(self.embed(one_hot(c, self.c_dim))))
        x = torch.cat(parts, dim=1)
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)
        x = x.unsqueeze(1).repeat([1, self.num_ws, 1])
        return truncate(x, self.w_avg, truncation_psi, truncation_cutoff)


def one_hot(c: torch.Tensor, c_dim: int) -> torch.Tensor:
    """Class labels as NVIDIA's tools give them: a class index [N] becomes its one-hot row; rows pass through."""
    if c.ndim == 1:
        return F.one_hot(c.long(), c_dim).to(torch.float32)
    return c.to(torch.float32)


def truncate(ws: torch.Tensor, w_avg: torch.Tensor | None, psi: float, cutoff: int | None) -> torch.Tensor:
    """ws with layers [0, cutoff) moved towards w_avg: w_avg.lerp(w, ψ), as NVIDIA's mapping does."""
    if psi == 1:
        return ws
    if w_avg is None:
        raise ValueError("this network tracks no average w, so it cannot be truncated")
    ws = ws.clone()
    cutoff = ws.shape[1] if cutoff is None else cutoff
    ws[:, :cutoff] = w_avg.lerp(ws[:, :cutoff], psi)
    return ws


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, noise=None, up: int = 1,
                     padding: int = 0, resample_filter=None, demodulate: bool = True,
                     flip_weight: bool = True) -> torch.Tensor:
    """Each sample's conv weights scaled by its style per input channel, then (demodulate) normalised per
    output channel to unit norm; applied as one grouped convolution over the batch."""
    batch = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    if x.dtype == torch.float16 and demodulate:  # keep fp16 in range: scale the weights and styles down first
        weight = weight * (1 / math.sqrt(in_channels * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)
    w = weight.unsqueeze(0) * styles.reshape(batch, 1, -1, 1, 1)
    if demodulate:
        w = w * (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt().reshape(batch, -1, 1, 1, 1)
    w = w.reshape(-1, in_channels, kh, kw).to(x.dtype)
    x = x.reshape(1, -1, *x.shape[2:])
    if up > 1:
        # Upsample with the low-pass filter first (it is linear and per channel, so it commutes with the
        # conv), then a true convolution (weights flipped) that trims the padding back off.
        fw, fh = filter_size(resample_filter)
        x = upfirdn2d(x, resample_filter, up=up, gain=up * up,
                      padding=[padding + (fw + up - 1) // 2, padding + (fw - up) // 2,
                               padding + (fh + up - 1) // 2, padding + (fh - up) // 2])
        x = F.conv2d(x, w if flip_weight else w.flip([2, 3]), groups=batch)
    else:
        x = F.conv2d(x, w if flip_weight else w.flip([2, 3]), padding=padding, groups=batch)
    x = x.reshape(batch, -1, *x.shape[2:])
    return x if noise is None else x + noise.to(x.dtype)


class SynthesisLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, kernel_size: int = 3,
                 up: int = 1, use_noise: bool = True, activation: str = "lrelu", resample_filter=(1, 3, 3, 1),
                 conv_clamp: float | None = None):
        super().__init__()
        self.resolution, self.up, self.use_noise, self.activation = resolution, up, use_noise, activation
        self.conv_clamp = conv_clamp
        self.padding = kernel_size // 2
        self.register_buffer("resample_filter", _resample_filter(resample_filter))
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x, w, noise_mode: str = "const", gain: float = 1.0, generator=None):
        styles = self.affine(w)
        noise = None
        if self.use_noise and noise_mode == "random":
            noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution], generator=generator,
                                device="cpu").to(x.device) * self.noise_strength
        elif self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength
        x = modulated_conv2d(x, self.weight, styles, noise, up=self.up, padding=self.padding,
                             resample_filter=self.resample_filter, flip_weight=self.up == 1)
        gain_act = math.sqrt(2) * gain if self.activation != "linear" else gain
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias.to(x.dtype), act=self.activation, gain=gain_act, clamp=clamp)


class ToRGBLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, w_dim: int, kernel_size: int = 1,
                 conv_clamp: float | None = None):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size * kernel_size)

    def forward(self, x, w):
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False)
        return bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)


class Conv2dLayer(nn.Module):
    """The resnet shortcut: a 1x1 conv with 2x upsampling and no bias."""

    def __init__(self, in_channels: int, out_channels: int, up: int = 2, resample_filter=(1, 3, 3, 1)):
        super().__init__()
        self.up = up
        self.register_buffer("resample_filter", _resample_filter(resample_filter))
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, 1, 1]))
        self.weight_gain = 1 / math.sqrt(in_channels)

    def forward(self, x, gain: float = 1.0):
        x = F.conv2d(x, (self.weight * self.weight_gain).to(x.dtype))
        x = upsample2d(x, self.resample_filter, self.up)
        return x * gain if gain != 1 else x


class SynthesisBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int,
                 is_last: bool, architecture: str = "skip", resample_filter=(1, 3, 3, 1),
                 conv_clamp: float | None = 256, use_fp16: bool = False, **layer_kwargs):
        super().__init__()
        self.in_channels, self.resolution, self.is_last = in_channels, resolution, is_last
        self.architecture, self.use_fp16 = architecture, use_fp16
        self.register_buffer("resample_filter", _resample_filter(resample_filter))
        self.num_conv = self.num_torgb = 0
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2,
                                        resample_filter=resample_filter, conv_clamp=conv_clamp, **layer_kwargs)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp,
                                    **layer_kwargs)
        self.num_conv += 1
        if is_last or architecture == "skip":
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
            self.num_torgb += 1
        if in_channels != 0 and architecture == "resnet":
            self.skip = Conv2dLayer(in_channels, out_channels, resample_filter=resample_filter)

    def forward(self, x, img, ws, noise_mode: str = "const", half: bool = False, generator=None):
        dtype = torch.float16 if self.use_fp16 and half else torch.float32
        w = iter(ws.unbind(dim=1))
        if self.in_channels == 0:
            x = self.const.to(dtype).unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
            x = self.conv1(x, next(w), noise_mode, generator=generator)
        elif self.architecture == "resnet":
            x = x.to(dtype)
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv0(x, next(w), noise_mode, generator=generator)
            x = self.conv1(x, next(w), noise_mode, gain=math.sqrt(0.5), generator=generator)
            x = y + x
        else:
            x = x.to(dtype)
            x = self.conv0(x, next(w), noise_mode, generator=generator)
            x = self.conv1(x, next(w), noise_mode, generator=generator)
        if img is not None:
            img = upsample2d(img, self.resample_filter)
        if self.is_last or self.architecture == "skip":
            y = self.torgb(x, next(w)).to(torch.float32)
            img = img + y if img is not None else y
        return x, img


class SynthesisNetwork(nn.Module):
    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, channel_base: int = 32768,
                 channel_max: int = 512, num_fp16_res: int = 0, **block_kwargs):
        super().__init__()
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        log2 = int(np.log2(img_resolution))
        self.block_resolutions = [2 ** i for i in range(2, log2 + 1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        fp16_resolution = max(2 ** (log2 + 1 - num_fp16_res), 8)
        self.num_ws = 0
        for res in self.block_resolutions:
            block = SynthesisBlock(channels[res // 2] if res > 4 else 0, channels[res], w_dim, res, img_channels,
                                   is_last=res == img_resolution, use_fp16=res >= fp16_resolution, **block_kwargs)
            self.num_ws += block.num_conv + (block.num_torgb if res == img_resolution else 0)
            setattr(self, f"b{res}", block)

    def forward(self, ws: torch.Tensor, noise_mode: str = "const", half: bool = False, generator=None) -> torch.Tensor:
        ws = ws.to(torch.float32)
        x = img = None
        index = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            x, img = block(x, img, ws.narrow(1, index, block.num_conv + block.num_torgb), noise_mode, half, generator)
            index += block.num_conv  # a block's ToRGB shares its w with the next block's first conv
        return img


class StyleGANGenerator(nn.Module):
    """What the GAN Sampler reads of a StyleGAN2/3 generator, beside mapping() and synthesis()."""
    architecture = ""
    seed_rule = "numpy"  # seeds as NVIDIA's gen_images.py draws them
    noise_modes = ("const", "random", "none")

    def __init__(self, config: StyleGANConfig):
        super().__init__()
        self.config = config
        self.z_dim, self.c_dim, self.w_dim = config.z_dim, config.c_dim, config.w_dim
        self.img_resolution, self.img_channels = config.img_resolution, config.img_channels

    @property
    def class_names(self) -> list[str]:
        """NVIDIA's models number their classes (gen_images.py --class=N)."""
        return [str(i) for i in range(self.c_dim)]

    @property
    def w_avg(self) -> torch.Tensor:
        return self.mapping.w_avg

    def forward(self, z, c=None, truncation_psi: float = 1.0, truncation_cutoff: int | None = None, **synthesis):
        return self.synthesis(self.mapping(z, c, truncation_psi, truncation_cutoff), **synthesis)

    def style_layers(self) -> list[tuple[int, FullyConnectedLayer]]:
        """(index into ws, the affine layer that turns that w into a style) of every modulated layer."""
        raise NotImplementedError


class Generator(StyleGANGenerator):
    architecture = "stylegan2"

    def __init__(self, config: StyleGANConfig):
        super().__init__(config)
        self.synthesis = SynthesisNetwork(config.w_dim, config.img_resolution, config.img_channels,
                                          **config.synthesis)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(config.z_dim, config.c_dim, config.w_dim, self.num_ws, **config.mapping)

    def style_layers(self) -> list[tuple[int, FullyConnectedLayer]]:
        out, index = [], 0
        for res in self.synthesis.block_resolutions:
            block = getattr(self.synthesis, f"b{res}")
            layers = [getattr(block, n) for n in ("conv0", "conv1") if hasattr(block, n)]
            out += [(index + n, layer.affine) for n, layer in enumerate(layers)]
            if hasattr(block, "torgb"):
                out.append((index + block.num_conv, block.torgb.affine))
            index += block.num_conv
        return out
