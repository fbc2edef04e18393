"""The Shapes data set encoded by a β-VAE: the Map view's scatter of two latent dimensions coloured by
one known factor (drawn with matplotlib), and where the explorer's first and random latents come from.
The encodings are built by ``encoded_dataset`` and kept by the manager (``manager.cached_data``)."""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from modules.capabilities.latent.beta_vae import LatentModel, encode_images
from modules.capabilities.latent.request import LatentMapRequest
from modules.zoo import shapes

DATASET_SEED = 777  # a fixed evaluation set, different from the training seeds
DEFAULT_SAMPLES = 500  # the Map's default: first and random latents share its encodings


@dataclass
class EncodedDataset:
    mu: np.ndarray                  # [N, latent_dim] posterior means
    sigma: np.ndarray               # [N, latent_dim] posterior σ
    labels: dict[str, np.ndarray]   # factor -> int labels [N]
    names: dict[str, tuple[str, ...]]


def factor_labels(data: shapes.ShapesData) -> tuple[dict[str, np.ndarray], dict[str, tuple[str, ...]]]:
    position = data.labels("position")
    labels = {f: data.labels(f) for f in ("kind", "colour", "size", "position", "background")}
    labels["position_x"], labels["position_y"] = position % 3, position // 3
    names = {f: shapes.factor_names(f) for f in ("kind", "colour", "size", "position", "background")}
    names["position_x"], names["position_y"] = ("left", "middle", "right"), ("top", "middle", "bottom")
    return labels, names


def dataset_key(model: LatentModel, samples: int) -> tuple:
    """What the manager keeps the encodings under: the model file (by hash) and the sample count."""
    return ("latent-map", model.title, model.sha256, id(model.vae), samples)


def encoded_dataset(model: LatentModel, samples: int) -> EncodedDataset:
    """The first ``samples`` images of the evaluation set, encoded (posterior means)."""
    data = shapes.make_dataset(samples, seed=DATASET_SEED, size=model.image_size)
    mu, sigma = encode_images(model, data.images)
    labels, names = factor_labels(data)
    return EncodedDataset(mu, sigma, labels, names)


def _colours(factor: str, names: tuple[str, ...]) -> list:
    if factor == "colour":
        return [np.array(shapes.COLOURS[n]) / 255 for n in names]
    if factor == "background":
        return [(0.85, 0.85, 0.85), (0.1, 0.1, 0.1), (0.5, 0.5, 0.5)]
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return [cmap(i % 10) for i in range(len(names))]


def scatter(request: LatentMapRequest, model: LatentModel, data: EncodedDataset,
            size_px: tuple[int, int] = (600, 460)) -> Image.Image:
    """μ of the data set (``encoded_dataset(model, request.samples)``) on (dim_x, dim_y), one colour per
    value of ``request.factor``; the manifold grid's square and the current latent drawn on top."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    labels, names = data.labels[request.factor], data.names[request.factor]
    colours = _colours(request.factor, names)
    dpi = 100
    figure = Figure(figsize=(size_px[0] / dpi, size_px[1] / dpi), dpi=dpi)
    axes = figure.add_subplot()
    x, y = data.mu[:, request.dim_x], data.mu[:, request.dim_y]
    for value, name in enumerate(names):
        chosen = labels == value
        if chosen.any():
            axes.scatter(x[chosen], y[chosen], s=10, color=colours[value], label=name, alpha=0.8,
                         edgecolors="black" if request.factor == "colour" else "none", linewidths=0.2)
    k = request.k
    axes.add_patch(Rectangle((-k, -k), 2 * k, 2 * k, fill=False, linestyle="--", edgecolor="0.4"))
    axes.plot([request.latent[request.dim_x]], [request.latent[request.dim_y]], marker="x", color="black",
              markersize=10, mew=2, label="current")
    axes.set_xlabel(model.dim_label(request.dim_x))
    axes.set_ylabel(model.dim_label(request.dim_y))
    axes.set_title(f"{len(x)} encoded Shapes images by {request.factor}", fontsize=10)
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), markerscale=1.5, frameon=False)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    buffer.seek(0)
    with Image.open(buffer) as image:
        return image.convert("RGB")
