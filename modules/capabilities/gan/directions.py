"""Latent directions of a StyleGAN network: unit vectors in w that change one aspect of the picture.

    sefa(generator, layers)          SeFa (Shen & Zhou 2021, closed form): the eigenvectors of AᵀA, A the style
                                     affine weights of the chosen layers stacked, each output row made unit
                                     length; the largest eigenvalues first. No sampling: the same every time.
    ganspace(generator, class, n)    GANSpace (Härkönen et al. 2020): the principal components of n sampled w
                                     (seeds 0..n-1, the network's own seed rule), the largest variance first.

A request's `directions` move ws[:, from:to] by strength × direction after truncation and style mixing, as
SeFa's and GANSpace's editors do. A direction file (JSON) keeps them:

    {"format": "zoo-gan-directions/1", "method": "sefa", "model": "...", "model_hash": "<sha256>",
     "layers": [from, to], "w_dim": 512, "directions": [[...], ...]}
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import torch

from modules.errors import InvalidRequest
from modules.generation.seeds import seed_latent

FORMAT = "zoo-gan-directions/1"
METHODS = ("sefa", "ganspace")
MAX_DIRECTIONS = 32
GANSPACE_SAMPLES = 4096


@dataclass
class Directions:
    method: str
    layers: tuple[int, int]            # ws[from:to]
    vectors: torch.Tensor              # [count, w_dim], float32, unit rows
    strengths: tuple[float, ...] = ()  # eigenvalues (SeFa) or variances (GANSpace), largest first

    def to_json(self, model_name: str = "", model_hash: str = "") -> str:
        return json.dumps({"format": FORMAT, "method": self.method, "model": model_name, "model_hash": model_hash,
                           "layers": list(self.layers), "w_dim": int(self.vectors.shape[1]),
                           "directions": [[float(v) for v in row] for row in self.vectors.tolist()]})


def _layer_range(generator, layers) -> tuple[int, int]:
    num_ws = int(generator.num_ws)
    start, end = (0, num_ws) if layers is None else (int(layers[0]), int(layers[1]))
    if not 0 <= start < end <= num_ws:
        raise InvalidRequest("layers", f"must be a range inside the model's {num_ws} layers, got {start}-{end}")
    return start, end


def sefa(generator, layers=None, count: int = 8) -> Directions:
    """SeFa's closed-form directions for the style layers whose w index lies in `layers`."""
    start, end = _layer_range(generator, layers)
    weights = [affine.weight.detach().float().cpu() * affine.weight_gain
               for index, affine in generator.style_layers() if start <= index < end]
    if not weights:
        raise InvalidRequest("layers", f"no style layer takes ws[{start}:{end}]")
    a = torch.cat(weights).double()
    a = a / a.norm(dim=1, keepdim=True).clamp_min(1e-12)
    values, vectors = torch.linalg.eigh(a.t() @ a)  # ascending
    order = values.argsort(descending=True)[:min(count, MAX_DIRECTIONS)]
    return Directions("sefa", (start, end), vectors[:, order].t().float().contiguous(),
                      tuple(float(v) for v in values[order]))


@torch.inference_mode()
def ganspace(generator, class_index: int = 0, count: int = 8, samples: int = GANSPACE_SAMPLES,
             layers=None) -> Directions:
    """GANSpace: principal components of w over `samples` seeds of one class."""
    start, end = _layer_range(generator, layers)
    rule = getattr(generator, "seed_rule", "torch")
    z = torch.stack([seed_latent(s, int(generator.z_dim), rule) for s in range(samples)])
    device = next(generator.parameters()).device
    c = torch.full((samples,), class_index, dtype=torch.long, device=device)
    w = generator.mapping(z.to(device), c)[:, 0].double().cpu()
    w = w - w.mean(dim=0)
    _, singular, vt = torch.linalg.svd(w, full_matrices=False)
    count = min(count, MAX_DIRECTIONS, vt.shape[0])
    return Directions("ganspace", (start, end), vt[:count].float().contiguous(),
                      tuple(float(v) ** 2 / (samples - 1) for v in singular[:count]))


def apply_edits(ws: torch.Tensor, edits: list[dict]) -> torch.Tensor:
    """ws [N, num_ws, w_dim] moved by each edit {"direction": [w_dim], "strength": s, "layers": [from, to]}."""
    for edit in edits:
        direction = torch.as_tensor(edit["direction"], dtype=ws.dtype, device=ws.device)
        start, end = edit["layers"]
        ws[:, start:end] += float(edit["strength"]) * direction
    return ws


def parse_direction_file(text: str, w_dim: int, name: str = "directions") -> Directions:
    """A direction file (FORMAT), checked against the model's w_dim."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidRequest("file", f"{name}: not valid JSON ({error})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InvalidRequest("file", f"{name}: not a direction file (format {FORMAT})")
    rows = data.get("directions")
    if not isinstance(rows, list) or not rows or len(rows) > MAX_DIRECTIONS:
        raise InvalidRequest("file", f"{name}: needs 1 to {MAX_DIRECTIONS} directions")
    try:
        vectors = torch.tensor(rows, dtype=torch.float32)
        start, end = (int(v) for v in data.get("layers"))
    except (TypeError, ValueError):
        raise InvalidRequest("file", f"{name}: directions must be lists of numbers and layers two numbers") from None
    if vectors.ndim != 2 or vectors.shape[1] != w_dim or not torch.isfinite(vectors).all():
        raise InvalidRequest("file", f"{name}: directions must have {w_dim} finite numbers each (this model's w)")
    method = data.get("method") if data.get("method") in METHODS else "file"
    return Directions(method, (start, end), vectors)
