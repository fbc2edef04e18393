"""StyleGAN3 generator (Karras et al. 2021, "Alias-Free Generative Adversarial Networks"), configs T and R,
written from the paper for inference.

    mapping(z, c, truncation_psi, truncation_cutoff) -> ws [N,num_ws,w_dim]   (num_ws = num_layers + 2)
    synthesis(ws, transform=None) -> images [N,img_channels,R,R]
        input:  Fourier features (fixed random frequencies and phases), rotated and translated per sample by
                an affine map of ws[0], then by the user's transform (StyleGAN3's --translate/--rotate:
                the inverse of the wanted image transform, a 3x3 matrix)
        layers: per layer a modulated conv (style = affine(w), demodulated; the input scaled by
                1/sqrt(the tracked input magnitude)), then filtered_lrelu: bias, upsampling low-pass
                filter, leaky ReLU, clamp, downsampling low-pass filter; the last layer is ToRGB
        output scaled by output_scale

Sampling rates, cutoffs, sizes and channels follow the paper's schedule from the init arguments; the
filters themselves are the file's own tensors (designed here with scipy only for a fresh network).
Config T: 3x3 convs, separable filters. Config R: 1x1 convs, radially symmetric downsampling filters.
Module and tensor names are NVIDIA's (`synthesis.L3_52_1024.affine.weight`).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from modules.zoo.stylegan2 import FullyConnectedLayer, StyleGANGenerator, normalize_2nd_moment, one_hot, truncate
from modules.zoo.stylegan_config import StyleGANConfig
from modules.zoo.stylegan_ops import filtered_lrelu


class MappingNetwork(nn.Module):
    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int, num_layers: int = 2,
                 lr_multiplier: float = 0.01, w_avg_beta: float = 0.998):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws, self.num_layers = z_dim, c_dim, w_dim, num_ws, num_layers
        self.embed = FullyConnectedLayer(c_dim, w_dim) if c_dim > 0 else None
        features = [z_dim + (w_dim if c_dim > 0 else 0)] + [w_dim] * num_layers
        for idx in range(num_layers):
            setattr(self, f"fc{idx}", FullyConnectedLayer(features[idx], features[idx + 1], activation="lrelu",
                                                          lr_multiplier=lr_multiplier))
        self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(self, z, c, truncation_psi: float = 1.0, truncation_cutoff: int | None = None) -> torch.Tensor:
        x = normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            x = torch.cat([x, normalize_2nd_moment(self.embed(one_hot(c, self.c_dim)))], dim=1)
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)
        return truncate(x.unsqueeze(1).repeat([1, self.num_ws, 1]), self.w_avg, truncation_psi, truncation_cutoff)


def transform_matrix(translate: tuple[float, float] = (0.0, 0.0), rotate: float = 0.0) -> torch.Tensor:
    """The input transform for StyleGAN3's --translate X,Y --rotate DEGREES: the inverse of the image's
    rotation-then-translation, as gen_images.py computes it (float64, then float32 in the buffer)."""
    angle = rotate / 360.0 * math.pi * 2
    m = np.eye(3)
    m[0, 0], m[0, 1], m[0, 2] = math.cos(angle), math.sin(angle), translate[0]
    m[1, 0], m[1, 1], m[1, 2] = -math.sin(angle), math.cos(angle), translate[1]
    return torch.from_numpy(np.linalg.inv(m)).to(torch.float32)


class SynthesisInput(nn.Module):
    def __init__(self, w_dim: int, channels: int, size: int, sampling_rate: float, bandwidth: float):
        super().__init__()
        self.channels, self.size = channels, (int(size), int(size))
        self.sampling_rate, self.bandwidth = float(sampling_rate), float(bandwidth)
        freqs = torch.randn([channels, 2])
        radii = freqs.square().sum(dim=1, keepdim=True).sqrt()
        freqs = freqs / (radii * radii.square().exp().pow(0.25)) * bandwidth
        self.weight = nn.Parameter(torch.randn([channels, channels]))
        self.affine = FullyConnectedLayer(w_dim, 4)
        with torch.no_grad():  # a fresh network starts with no rotation or shift (a file brings its own)
            self.affine.weight.zero_()
            self.affine.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))
        self.register_buffer("transform", torch.eye(3, 3))
        self.register_buffer("freqs", freqs)
        self.register_buffer("phases", torch.rand([channels]) - 0.5)

    def forward(self, w: torch.Tensor, transform: torch.Tensor | None = None) -> torch.Tensor:
        user = (self.transform if transform is None else transform.to(w.device, torch.float32)).unsqueeze(0)
        t = self.affine(w)                                 # (cos, sin, x, y) of the per-sample input rotation/shift
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        batch = w.shape[0]
        rotation = torch.eye(3, device=w.device).unsqueeze(0).repeat([batch, 1, 1])
        rotation[:, 0, 0], rotation[:, 0, 1], rotation[:, 1, 0], rotation[:, 1, 1] = t[:, 0], -t[:, 1], t[:, 1], t[:, 0]
        shift = torch.eye(3, device=w.device).unsqueeze(0).repeat([batch, 1, 1])
        shift[:, 0, 2], shift[:, 1, 2] = -t[:, 2], -t[:, 3]
        transforms = rotation @ shift @ user
        freqs, phases = self.freqs.unsqueeze(0), self.phases.unsqueeze(0)
        phases = phases + (freqs @ transforms[:, :2, 2:]).squeeze(2)
        freqs = freqs @ transforms[:, :2, :2]
        # Fade out frequencies above the band so that none aliases at this sampling rate.
        amplitudes = (1 - (freqs.norm(dim=2) - self.bandwidth) / (self.sampling_rate / 2 - self.bandwidth)).clamp(0, 1)
        theta = torch.eye(2, 3, device=w.device)
        theta[0, 0] = 0.5 * self.size[0] / self.sampling_rate
        theta[1, 1] = 0.5 * self.size[1] / self.sampling_rate
        grid = F.affine_grid(theta.unsqueeze(0), [1, 1, self.size[1], self.size[0]], align_corners=False)
        x = (grid.unsqueeze(3) @ freqs.permute(0, 2, 1).unsqueeze(1).unsqueeze(2)).squeeze(3)
        x = torch.sin((x + phases.unsqueeze(1).unsqueeze(2)) * (math.pi * 2)) * amplitudes.unsqueeze(1).unsqueeze(2)
        x = x @ (self.weight / math.sqrt(self.channels)).t()
        return x.permute(0, 3, 1, 2)


def design_lowpass_filter(numtaps: int, cutoff: float, width: float, fs: float, radial: bool = False):
    """A windowed-sinc low-pass (Kaiser window): separable taps, or a 2-D radial (jinc) one. Only a fresh network
    needs this; a file brings its filters."""
    if numtaps == 1:
        return None
    import scipy.signal
    import scipy.special
    if not radial:
        return torch.as_tensor(scipy.signal.firwin(numtaps=numtaps, cutoff=cutoff, width=width, fs=fs),
                               dtype=torch.float32)
    x = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    r = np.hypot(*np.meshgrid(x, x))
    f = scipy.special.j1(2 * cutoff * (np.pi * r)) / (np.pi * r)
    window = np.kaiser(numtaps, scipy.signal.kaiser_beta(scipy.signal.kaiser_atten(numtaps, width / (fs / 2))))
    f *= np.outer(window, window)
    return torch.as_tensor(f / np.sum(f), dtype=torch.float32)


class SynthesisLayer(nn.Module):
    def __init__(self, w_dim: int, is_torgb: bool, is_critically_sampled: bool, use_fp16: bool, in_channels: int,
                 out_channels: int, in_size: int, out_size: int, in_sampling_rate: int, out_sampling_rate: int,
                 in_cutoff: float, out_cutoff: float, in_half_width: float, out_half_width: float,
                 conv_kernel: int = 3, filter_size: int = 6, lrelu_upsampling: int = 2,
                 use_radial_filters: bool = False, conv_clamp: float | None = 256, design_filters: bool = True):
        super().__init__()
        self.is_torgb, self.use_fp16 = is_torgb, use_fp16
        self.in_channels, self.out_channels = in_channels, out_channels
        self.out_size = out_size
        self.conv_kernel = 1 if is_torgb else conv_kernel
        self.conv_clamp = conv_clamp
        tmp_sampling_rate = max(in_sampling_rate, out_sampling_rate) * (1 if is_torgb else lrelu_upsampling)
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, self.conv_kernel, self.conv_kernel]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.register_buffer("magnitude_ema", torch.ones([]))
        self.up_factor = int(round(tmp_sampling_rate / in_sampling_rate))
        self.down_factor = int(round(tmp_sampling_rate / out_sampling_rate))
        up_taps = filter_size * self.up_factor if self.up_factor > 1 and not is_torgb else 1
        down_taps = filter_size * self.down_factor if self.down_factor > 1 and not is_torgb else 1
        radial = use_radial_filters and not is_critically_sampled
        design = design_lowpass_filter if design_filters else _blank_filter
        self.register_buffer("up_filter", design(up_taps, in_cutoff, in_half_width * 2, tmp_sampling_rate))
        self.register_buffer("down_filter", design(down_taps, out_cutoff, out_half_width * 2, tmp_sampling_rate,
                                                   radial))
        # Pad so that the output lands on the symmetric sample grid of the paper's appendix C.3.
        total = (out_size - 1) * self.down_factor + 1
        total -= (in_size + self.conv_kernel - 1) * self.up_factor
        total += up_taps + down_taps - 2
        low = (total + self.up_factor) // 2
        self.padding = [low, total - low, low, total - low]

    def forward(self, x: torch.Tensor, w: torch.Tensor, half: bool = False) -> torch.Tensor:
        styles = self.affine(w)
        if self.is_torgb:
            styles = styles * (1 / math.sqrt(self.in_channels * self.conv_kernel ** 2))
        dtype = torch.float16 if self.use_fp16 and half else torch.float32
        x = modulated_conv2d(x.to(dtype), self.weight, styles, padding=self.conv_kernel - 1,
                             demodulate=not self.is_torgb, input_gain=self.magnitude_ema.rsqrt())
        return filtered_lrelu(x, self.up_filter, self.down_filter, self.bias.to(x.dtype), self.up_factor,
                              self.down_factor, self.padding, gain=1 if self.is_torgb else math.sqrt(2),
                              slope=1 if self.is_torgb else 0.2, clamp=self.conv_clamp)


def _blank_filter(numtaps: int, cutoff, width, fs, radial: bool = False):
    if numtaps == 1:
        return None
    return torch.zeros([numtaps, numtaps] if radial else [numtaps])


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, padding: int = 0,
                     demodulate: bool = True, input_gain: torch.Tensor | None = None) -> torch.Tensor:
    batch = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    if demodulate:
        # Pre-normalise for fp16 range (demodulation cancels it). Per sample, so a picture never depends on
        # the rest of its batch (NVIDIA's code takes this mean over the whole batch; the difference is in
        # the 1e-8 epsilon only).
        weight = weight * weight.square().mean([1, 2, 3], keepdim=True).rsqrt()
        styles = styles * styles.square().mean(dim=1, keepdim=True).rsqrt()
    w = weight.unsqueeze(0) * styles.unsqueeze(1).unsqueeze(3).unsqueeze(4)
    if demodulate:
        w = w * (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt().unsqueeze(2).unsqueeze(3).unsqueeze(4)
    if input_gain is not None:
        w = w * input_gain.expand(batch, in_channels).unsqueeze(1).unsqueeze(3).unsqueeze(4)
    x = F.conv2d(x.reshape(1, -1, *x.shape[2:]), w.reshape(-1, in_channels, kh, kw).to(x.dtype), padding=padding,
                 groups=batch)
    return x.reshape(batch, -1, *x.shape[2:])


class SynthesisNetwork(nn.Module):
    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, channel_base: int = 32768,
                 channel_max: int = 512, num_layers: int = 14, num_critical: int = 2, first_cutoff: float = 2,
                 first_stopband: float = 2 ** 2.1, last_stopband_rel: float = 2 ** 0.3, margin_size: int = 10,
                 output_scale: float = 0.25, num_fp16_res: int = 4, design_filters: bool = True, **layer_kwargs):
        super().__init__()
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.num_ws = num_layers + 2
        self.output_scale = output_scale
        # The paper's schedule: cutoffs and stopbands rise geometrically to the last critically sampled layers.
        last_cutoff = img_resolution / 2
        last_stopband = last_cutoff * last_stopband_rel
        exponents = np.minimum(np.arange(num_layers + 1) / (num_layers - num_critical), 1)
        cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** exponents
        stopbands = first_stopband * (last_stopband / first_stopband) ** exponents
        sampling_rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, img_resolution))))
        half_widths = np.maximum(stopbands, sampling_rates / 2) - cutoffs
        sizes = sampling_rates + margin_size * 2
        sizes[-2:] = img_resolution
        channels = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max))
        channels[-1] = img_channels
        self.input = SynthesisInput(w_dim, int(channels[0]), int(sizes[0]), sampling_rates[0], cutoffs[0])
        self.layer_names = []
        for idx in range(num_layers + 1):
            prev = max(idx - 1, 0)
            layer = SynthesisLayer(
                w_dim, is_torgb=idx == num_layers, is_critically_sampled=idx >= num_layers - num_critical,
                use_fp16=bool(sampling_rates[idx] * 2 ** num_fp16_res > img_resolution),
                in_channels=int(channels[prev]), out_channels=int(channels[idx]), in_size=int(sizes[prev]),
                out_size=int(sizes[idx]), in_sampling_rate=int(sampling_rates[prev]),
                out_sampling_rate=int(sampling_rates[idx]), in_cutoff=float(cutoffs[prev]),
                out_cutoff=float(cutoffs[idx]), in_half_width=float(half_widths[prev]),
                out_half_width=float(half_widths[idx]), design_filters=design_filters, **layer_kwargs)
            name = f"L{idx}_{layer.out_size}_{layer.out_channels}"
            setattr(self, name, layer)
            self.layer_names.append(name)

    def forward(self, ws: torch.Tensor, noise_mode: str = "const", transform: torch.Tensor | None = None,
                half: bool = False, generator=None) -> torch.Tensor:
        ws = ws.to(torch.float32).unbind(dim=1)
        x = self.input(ws[0], transform)
        for name, w in zip(self.layer_names, ws[1:]):
            x = getattr(self, name)(x, w, half)
        if self.output_scale != 1:
            x = x * self.output_scale
        return x.to(torch.float32)


class Generator(StyleGANGenerator):
    architecture = "stylegan3"

    def __init__(self, config: StyleGANConfig, design_filters: bool = False):
        super().__init__(config)
        self.synthesis = SynthesisNetwork(config.w_dim, config.img_resolution, config.img_channels,
                                          design_filters=design_filters, **config.synthesis)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(config.z_dim, config.c_dim, config.w_dim, self.num_ws, **config.mapping)

    def style_layers(self) -> list[tuple[int, FullyConnectedLayer]]:
        """ws[0] moves the input (a rotation and shift, not a style), so the layers start at ws[1]."""
        return [(n + 1, getattr(self.synthesis, name).affine) for n, name in enumerate(self.synthesis.layer_names)]
