"""The Latent Explorer's jobs as the runner calls them: (request, loaded model, job, hooks) -> result.
The work itself is in beta_vae.py (small VAEs) and sd_vae.py (Stable Diffusion VAEs); here a job gets
its model from what the manager yielded, checks the request against it, and saves what it made."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from modules.capabilities.latent import beta_vae, data_map, sd_vae
from modules.capabilities.latent.models import as_latent_model, sd_vae_module
from modules.capabilities.latent.state import png_text, with_metadata

SAVE_FOLDER = f"{beta_vae.OUTPUT_MODE}-images"   # outputs/latent-images/<date>/NNNNN-<model>.png


def _model(request, loaded) -> tuple[beta_vae.LatentModel, object]:
    """The β-VAE, and the request checked against its latent_dim (known only now it is loaded)."""
    model = as_latent_model(loaded)
    return model, request.validated(model.latent_dim)


def labels(model: beta_vae.LatentModel) -> list[str]:
    return [model.dim_label(d) for d in range(model.latent_dim)]


def _outdir(hooks) -> Path | None:
    return getattr(getattr(hooks, "p", None), "outdir", None)


def _encoded(model: beta_vae.LatentModel, hooks, samples: int = data_map.DEFAULT_SAMPLES) -> data_map.EncodedDataset:
    """The evaluation data set encoded by this model, kept by the manager (built on first use)."""
    manager = hooks.p.backend.manager
    return manager.cached_data(data_map.dataset_key(model, samples), lambda: data_map.encoded_dataset(model, samples),
                               title=f"{model.name} · {samples} encoded Shapes images (Map)")


# ---------------------------------------------------------------- β-VAE

@dataclass
class DecodedLatent:
    image: Image.Image            # native size; carries the latent in its PNG text
    latent: np.ndarray
    labels: list[str]             # each dimension's name: "z3 · position_x"
    path: Path | None = None      # where it was saved (request.save)
    seed: int | None = None       # a random latent's seed
    index: int | None = None      # a data-set latent's image number


def decode(request, loaded, job, hooks) -> DecodedLatent:
    model, request = _model(request, loaded)
    decoded = beta_vae.decode(request, model)
    path = None
    if request.save:
        from modules.capabilities.base import SaveSpec

        text = png_text(decoded.state)
        infotext = text.pop("parameters")
        path = hooks.save_image(decoded.image, infotext,
                                SaveSpec(SAVE_FOLDER, (model.name or "latent").replace("/", "_"), text))
    return DecodedLatent(decoded.image, decoded.state.latent, labels(model), path)


def random(request, loaded, job, hooks) -> DecodedLatent:
    """A latent from the data set's aggregate posterior (beta_vae.random_latent), decoded."""
    model, request = _model(request, loaded)
    encoded = _encoded(model, hooks)
    latent = beta_vae.random_latent(request, encoded.mu, encoded.sigma)
    return _decoded(model, latent, seed=request.seed)


def dataset(request, loaded, job, hooks) -> DecodedLatent:
    """The encoding of data-set image ``request.index``, decoded: a clear first picture."""
    model, request = _model(request, loaded)
    # The first images of the evaluation set are the same whatever its length: encode only what is needed
    # (opening the tab stays quick), in steps so a few neighbouring indices share one encoding.
    samples = min(data_map.DEFAULT_SAMPLES, max(16, (request.index // 16 + 1) * 16))
    latent = _encoded(model, hooks, samples).mu[request.index]
    return _decoded(model, latent, index=request.index)


def _decoded(model: beta_vae.LatentModel, latent: np.ndarray, **extra) -> DecodedLatent:
    from modules.capabilities.latent.request import LatentDecodeRequest

    decoded = beta_vae.decode(LatentDecodeRequest(model.title, latent).validated(model.latent_dim), model)
    return DecodedLatent(decoded.image, decoded.state.latent, labels(model), **extra)


@dataclass
class EncodeResult:
    mu: np.ndarray
    sigma: np.ndarray             # zeros when restored from a PNG's stored latent
    input_image: Image.Image      # what the encoder saw
    reconstruction: Image.Image   # decoded μ
    model: str                    # the title of the β-VAE used (a PNG's own model when it is here)
    labels: list[str]             # each dimension's name
    restored: bool                # the image was a PNG saved here: its stored latent, exactly
    note: str = ""                # which model, when the PNG named another one


def encode(request, loaded, job, hooks) -> EncodeResult:
    model, request = _model(request, loaded)
    result = beta_vae.encode(request, model)
    reconstruction = with_metadata(result.reconstruction, model.state(result.mu))  # saved, it restores μ
    return EncodeResult(result.mu, result.sigma, result.input_image, reconstruction, model.title,
                        labels(model), result.restored is not None, request.note)


def interpolate(request, loaded, job, hooks) -> beta_vae.InterpolateResult:
    model, request = _model(request, loaded)
    return beta_vae.interpolate(request, model, _outdir(hooks))


def traverse(request, loaded, job, hooks) -> Image.Image:
    model, request = _model(request, loaded)
    return beta_vae.traverse(request, model)


@dataclass
class MapResult:
    manifold: Image.Image    # the decoded grid over (dim_x, dim_y)
    scatter: Image.Image     # the encoded data set on the same axes


def latent_map(request, loaded, job, hooks) -> MapResult:
    model, request = _model(request, loaded)
    return MapResult(beta_vae.manifold(request, model),
                     data_map.scatter(request, model, _encoded(model, hooks, request.samples)))


# ---------------------------------------------------------------- SD VAE

@dataclass
class SdEncodeResult:
    current: sd_vae.SdVaeLatent
    image: Image.Image                          # the latent decoded as it is
    channels: list[tuple[Image.Image, str]]     # each channel as a picture, with a caption


def sd_encode(request, loaded, job, hooks) -> SdEncodeResult:
    from modules.capabilities.latent.sd_request import SdVaeEdit

    vae = sd_vae_module(loaded)
    current = sd_vae.encode(request, vae)
    image = sd_vae.decode(current, SdVaeEdit().validated(len(current.latent), 0), vae)
    return SdEncodeResult(current, image, sd_vae.channel_views(current.latent))


@dataclass
class SdDecodedLatent:
    image: Image.Image
    channels: list[tuple[Image.Image, str]]


def sd_decode(request, loaded, job, hooks) -> SdDecodedLatent:
    vae = sd_vae_module(loaded)
    image = sd_vae.decode(request.current, request.edit, vae, request.directions)
    return SdDecodedLatent(image, sd_vae.channel_views(sd_vae.apply_edit(request.current, request.edit,
                                                                        request.directions)))


def sd_directions(request, loaded, job, hooks) -> sd_vae.Directions:
    return sd_vae.principal_directions(request, sd_vae_module(loaded), request.size)
