"""GAN sampling: a pure function of a validated GanRequest and a loaded generator.

    z     from the seed (seeds.seed_latent: CPU generator, same on every device), a point of the
          seed plane (seeds.plane_latent), or an imported latent
    w     = mapping(z, class)
    w'    = w_avg[class] + ψ (w - w_avg[class])         truncation; ψ = 0 is the class's average image
    image = synthesis(w')

Per-layer styles: a generator with ``num_ws`` > 0 (StyleGAN's convention) takes ``ws [N, num_ws, w_dim]``,
one w per synthesis layer. For those, truncation can stop at a layer (the cutoff) and layers from
``style_mix_from`` on can take another seed's w (style mixing). The built-in GAN feeds its one w
into its first layer only (a DCGAN body), so it has neither; the request gets a clear error and
the tab hides both controls.

StyleGAN files (NVIDIA's StyleGAN2/3, ``architecture``): seeds draw z as NVIDIA's gen_images.py does, truncation
is NVIDIA's lerp, pixels are its ``x * 127.5 + 128`` truncated to uint8, and the request's noise mode,
StyleGAN3 translate/rotate (the input transform, always passed, identity included) and latent direction edits
(directions.py) reach the synthesis network. A style-mixing grid (``style_mix_seeds``) crosses the seeds with
the mix seeds' styles over layers [style_mix_from, style_mix_to).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from modules.capabilities.base import SaveSpec
from modules.capabilities.gan import state as gan_state
from modules.capabilities.gan.request import ALL_CLASSES, GanRequest
from modules.errors import InvalidRequest
from modules.generation.infotext import format_infotext
from modules.generation.seeds import format_seeds, nearest_plane_seed, plane_latent, seed_latent
from modules.jobs import Job
from modules.version import VERSION

CHUNK = 64  # images per forward pass: bounded memory whatever the grid size
NO_LAYER_STYLES = ("this model feeds its w into the first synthesis layer only (no per-layer styles), "
                   "so there is nothing to cut off or mix")
STATE_KEY = "zoo_gan"            # PNG text chunk: one image's state (state.py)
GRID_STATE_KEY = "zoo_gan_latents"  # PNG text chunk of a grid: every image's state


@dataclass(frozen=True)
class GanCapabilities:
    z_dim: int
    class_names: tuple[str, ...]  # empty for an unconditional model
    num_ws: int                   # 0: one w for the whole synthesis network
    image_size: int
    architecture: str = ""        # "stylegan2", "stylegan3" (NVIDIA's networks), "": the built-in GAN
    seed_rule: str = "torch"      # how a seed draws z (generation/seeds.seed_latent): "numpy" for StyleGAN files
    w_dim: int = 0

    @property
    def stylegan(self) -> bool:
        return bool(self.architecture)

    @property
    def input_transform(self) -> bool:
        """StyleGAN3's translate and rotate (its Fourier-feature input can be moved)."""
        return self.architecture == "stylegan3"

    @property
    def conditional(self) -> bool:
        return len(self.class_names) > 1

    @property
    def layer_styles(self) -> bool:
        return self.num_ws > 0


def capabilities(generator) -> GanCapabilities:
    names = tuple(getattr(generator, "class_names", ()) or ())
    size = getattr(getattr(generator, "config", None), "image_size", None) or getattr(generator, "img_resolution", 0)
    num_ws = int(getattr(generator, "num_ws", 0) or 0)
    return GanCapabilities(int(generator.z_dim), names if len(names) > 1 else (), num_ws, int(size),
                           str(getattr(generator, "architecture", "") or ""),
                           str(getattr(generator, "seed_rule", "torch")), int(getattr(generator, "w_dim", 0) or 0))


@dataclass
class GanSample:
    """One image's latent: what the PNG and the export file carry."""
    z: torch.Tensor | None                   # float32 [z_dim], CPU; None for a projected w
    class_index: int = 0
    seed: int | None = None                  # None: an imported latent that no seed gives
    position: tuple[float, float] | None = None  # on the seed plane
    mix_seed: int | None = None              # a style-mixing grid's column seed
    w: torch.Tensor | None = None            # a projected latent instead of z: [num_ws or 1, w_dim] (projection.py)

    @property
    def name_seed(self) -> int | None:
        """The seed for file names and captions (the nearest one on the seed plane)."""
        if self.position is not None:
            return nearest_plane_seed(*self.position)
        return self.seed


@dataclass
class GanResult:
    request: GanRequest
    model_title: str
    samples: list[GanSample] = field(default_factory=list)
    images: list[Image.Image] = field(default_factory=list)
    infotexts: list[str] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)  # "Seed 5 · red circle", for a gallery
    states: list[dict] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)
    grid: Image.Image | None = None
    grid_path: Path | None = None

    @property
    def infotext(self) -> str:
        return self.infotexts[0] if self.infotexts else ""


def class_indices(class_name, caps: GanCapabilities, field_name: str = "class_name") -> list[int]:
    """[index] of a class name or number; every index for ALL_CLASSES; [0] for an unconditional model."""
    if not caps.conditional:
        return [0]
    if class_name is None:
        return [0]
    if class_name == ALL_CLASSES:
        return list(range(len(caps.class_names)))
    text = str(class_name).strip()
    lowered = [n.lower() for n in caps.class_names]
    if text.lower() in lowered:
        return [lowered.index(text.lower())]
    if text.isdigit() and int(text) < len(caps.class_names):
        return [int(text)]
    raise InvalidRequest(field_name, f"unknown class {text!r}: this model has {', '.join(caps.class_names)}")


def samples_for(request: GanRequest, caps: GanCapabilities) -> list[GanSample]:
    """The latents a request asks for: imported ones, one point of the seed plane, or seeds × classes
    (one row of seeds per class)."""
    if request.latents is not None:
        out = []
        for n, item in enumerate(request.latents):
            if item.get("z") is not None and len(item["z"]) != caps.z_dim:
                raise InvalidRequest("latents", f"item {n} has {len(item['z'])} numbers; "
                                                f"this model's z has {caps.z_dim}")
            (index,) = class_indices(item["class"] if item["class"] is not None else request.class_name, caps)
            if item.get("w") is not None:
                out.append(GanSample(None, index, w=projected_w(item["w"], caps, n)))
                continue
            out.append(GanSample(torch.tensor(item["z"], dtype=torch.float32), index, item["seed"], item["position"]))
        return out
    classes = class_indices(request.class_name, caps)
    if request.position is not None:
        return [GanSample(plane_latent(*request.position, caps.z_dim, caps.seed_rule), c, position=request.position)
                for c in classes]
    if request.style_mix_seeds is not None:  # row by row: each seed with each column seed's styles
        return [GanSample(seed_latent(s, caps.z_dim, caps.seed_rule), classes[0], seed=s, mix_seed=m)
                for s in request.seeds for m in request.style_mix_seeds]
    return [GanSample(seed_latent(s, caps.z_dim, caps.seed_rule), c, seed=s) for c in classes for s in request.seeds]


def projected_w(rows: list, caps: GanCapabilities, n: int) -> torch.Tensor:
    """A projection's w as this model takes it: [num_ws, w_dim] (one row: every layer), [1, w_dim] without layers."""
    w = torch.tensor(rows, dtype=torch.float32)
    w_dim = caps.w_dim or w.shape[1]
    layers = max(caps.num_ws, 1)
    if w.shape[1] != w_dim or w.shape[0] not in (1, layers):
        raise InvalidRequest("latents", f"item {n}: w is {w.shape[0]} × {w.shape[1]}; this model takes "
                                        f"{layers} × {w_dim} (or 1 × {w_dim})")
    return w.expand(layers, -1).clone()


def check_stylegan_options(request: GanRequest, caps: GanCapabilities) -> None:
    """Noise mode is StyleGAN's; translate and rotate are StyleGAN3's: elsewhere they would be ignored."""
    if request.noise_mode != "const" and not caps.stylegan:
        raise InvalidRequest("noise_mode", "only StyleGAN networks have noise inputs")
    if request.directions:
        if not caps.stylegan:
            raise InvalidRequest("directions", "latent directions are for StyleGAN networks")
        if len(request.directions[0]["direction"]) != caps.w_dim:
            raise InvalidRequest("directions", f"a direction has {len(request.directions[0]['direction'])} numbers; "
                                               f"this model's w has {caps.w_dim}")
        if any(edit["layers"][1] > caps.num_ws for edit in request.directions):
            raise InvalidRequest("directions", f"layers must end by the model's {caps.num_ws} layers")
    if not caps.input_transform:
        if request.translate != (0.0, 0.0):
            raise InvalidRequest("translate", "only StyleGAN3 networks can move their input")
        if request.rotate != 0:
            raise InvalidRequest("rotate", "only StyleGAN3 networks can rotate their input")


def synthesis_options(caps: GanCapabilities, noise_mode: str = "const", translate=(0.0, 0.0),
                      rotate: float = 0.0) -> dict:
    """Keyword arguments of a StyleGAN synthesis network: the noise mode and, for StyleGAN3, the input transform
    (always given, identity included, as gen_images.py sets it: the file's stored transform is not used)."""
    if not caps.stylegan:
        return {}
    options = {"noise_mode": noise_mode}
    if caps.input_transform:
        from modules.zoo.stylegan3 import transform_matrix
        options["transform"] = transform_matrix(translate, rotate)
    return options


def check_layer_options(request: GanRequest, caps: GanCapabilities) -> None:
    if caps.layer_styles:
        if request.truncation_cutoff is not None and request.truncation_cutoff > caps.num_ws:
            raise InvalidRequest("truncation_cutoff",
                                 f"this model has {caps.num_ws} layers, got {request.truncation_cutoff}")
        mixing = request.style_mix_seed is not None or request.style_mix_seeds is not None
        if mixing and request.style_mix_from > caps.num_ws:
            raise InvalidRequest("style_mix_from", f"this model has {caps.num_ws} layers, got {request.style_mix_from}")
        if mixing and request.style_mix_to is not None and request.style_mix_to > caps.num_ws:
            raise InvalidRequest("style_mix_to", f"this model has {caps.num_ws} layers, got {request.style_mix_to}")
        return
    if request.truncation_cutoff is not None:
        raise InvalidRequest("truncation_cutoff", NO_LAYER_STYLES)
    if request.style_mix_seed is not None:
        raise InvalidRequest("style_mix_seed", NO_LAYER_STYLES)
    if request.style_mix_seeds is not None:
        raise InvalidRequest("style_mix_seeds", NO_LAYER_STYLES)


def model_device(generator) -> torch.device:
    return next(generator.parameters()).device


def average_w(generator, class_idx: torch.Tensor) -> torch.Tensor:
    w_avg = generator.w_avg
    return w_avg[class_idx] if w_avg.ndim == 2 else w_avg.expand(len(class_idx), -1)


def mapped(generator, z: torch.Tensor, class_idx: torch.Tensor) -> torch.Tensor:
    """w [N, w_dim] (untruncated) of CPU z [N, z_dim]; on the generator's device."""
    device = model_device(generator)
    w = generator.mapping(z.to(device), class_idx.to(device))
    return w[:, 0] if w.ndim == 3 else w  # StyleGAN's mapping repeats w per layer already


@torch.inference_mode()
def synthesize_w(generator, w: torch.Tensor, class_idx: torch.Tensor, truncation_psi: float,
                 truncation_cutoff: int | None = None, mix_w: torch.Tensor | None = None,
                 mix_from: int = 1, options: dict | None = None, seeds: list | None = None,
                 mix_to: int | None = None, edits: list[dict] | None = None) -> torch.Tensor:
    """Images [N,3,H,W] in [-1,1] on the CPU from untruncated w [N, w_dim]. `options`: synthesis_options();
    random noise is drawn per image from its seed (`seeds`), so an image never depends on its batch."""
    caps = capabilities(generator)
    w_avg = average_w(generator, class_idx.to(w.device))
    num_ws = caps.num_ws
    if not num_ws:
        return generator.synthesis(w_avg + truncation_psi * (w - w_avg)).clamp(-1, 1).float().cpu()
    ws = w[:, None].repeat(1, num_ws, 1)
    if mix_w is not None:
        ws[:, mix_from:mix_to] = mix_w[:, None]
    return synthesize_ws(generator, ws, w_avg, truncation_psi, truncation_cutoff, options, seeds, edits)


@torch.inference_mode()
def synthesize_ws(generator, ws: torch.Tensor, w_avg: torch.Tensor, truncation_psi: float = 1.0,
                  truncation_cutoff: int | None = None, options: dict | None = None, seeds: list | None = None,
                  edits: list[dict] | None = None) -> torch.Tensor:
    """Images [N,3,H,W] in [-1,1] on the CPU from per-layer ws [N, num_ws, w_dim] (a projection's, or a seed's
    repeated): truncation towards w_avg [N, w_dim], then the direction edits."""
    caps = capabilities(generator)
    num_ws = caps.num_ws
    cutoff = num_ws if truncation_cutoff is None else truncation_cutoff
    if caps.stylegan:  # exactly NVIDIA's arithmetic (torch.lerp), so pixels match its tools
        if truncation_psi != 1:
            ws[:, :cutoff] = w_avg[:, None].lerp(ws[:, :cutoff], truncation_psi)
    else:
        ws[:, :cutoff] = w_avg[:, None] + truncation_psi * (ws[:, :cutoff] - w_avg[:, None])
    if edits:
        from modules.capabilities.gan.directions import apply_edits
        ws = apply_edits(ws, edits)
    options = options or {}
    if options.get("noise_mode") == "random":
        images = [generator.synthesis(ws[n:n + 1], generator=torch.Generator("cpu").manual_seed(
                  int((seeds or [0] * len(ws))[n] or 0)), **options) for n in range(len(ws))]
        return torch.cat(images).clamp(-1, 1).float().cpu()
    return generator.synthesis(ws, **options).clamp(-1, 1).float().cpu()


@torch.inference_mode()
def synthesize(generator, z: torch.Tensor, class_idx: torch.Tensor, truncation_psi: float = 1.0,
               truncation_cutoff: int | None = None, mix_z: torch.Tensor | None = None, mix_from: int = 1,
               job: Job | None = None, options: dict | None = None, seeds: list | None = None,
               mix_to: int | None = None, edits: list[dict] | None = None) -> torch.Tensor:
    """Images [N,3,H,W] in [-1,1], CPU float32, for CPU z [N, z_dim] and class indices [N]. `mix_z`: [1, z_dim]
    for every image, or [N, z_dim], one per image (a style-mixing grid); its w replaces layers [mix_from, mix_to)."""
    out = []
    for chunk, start in enumerate(range(0, len(z), CHUNK)):
        if job is not None:
            job.check()
        part = slice(start, start + CHUNK)
        w = mapped(generator, z[part], class_idx[part])
        mix_part = None if mix_z is None else mix_z.expand(len(z), -1)[part]
        mix_w = None if mix_part is None else mapped(generator, mix_part, class_idx[part])
        out.append(synthesize_w(generator, w, class_idx[part], truncation_psi, truncation_cutoff, mix_w, mix_from,
                                options, None if seeds is None else seeds[part], mix_to, edits))
        if job is not None:
            job.step = chunk + 1
    return torch.cat(out)


def to_pil(images: torch.Tensor, stylegan: bool = False) -> list[Image.Image]:
    if stylegan:  # NVIDIA's gen_images.py: x * 127.5 + 128, clamped, truncated to uint8
        pixels = (images.permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8).numpy()
        return [Image.fromarray(p) for p in pixels]
    pixels = ((images + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return [Image.fromarray(p) for p in pixels]


def grid_image(images: list[Image.Image], columns: int, gap: int = 1) -> Image.Image:
    w, h = images[0].size
    rows = math.ceil(len(images) / columns)
    grid = Image.new("RGB", (columns * (w + gap) - gap, rows * (h + gap) - gap), (255, 255, 255))
    for n, image in enumerate(images):
        r, c = divmod(n, columns)
        grid.paste(image, (c * (w + gap), r * (h + gap)))
    return grid


def grid_columns(request: GanRequest, count: int) -> int:
    if request.latents is None and request.position is None and request.class_name == ALL_CLASSES:
        return len(request.seeds) * classes_per_row(len(request.seeds), count // len(request.seeds))
    return max(1, math.ceil(math.sqrt(count)))


def classes_per_row(seeds: int, classes: int) -> int:
    """How many classes (each a run of `seeds` images) share a grid row: a whole number of classes per row,
    as near a square grid as the class count allows (ties: the wider one, for a landscape screen).
    A row per class made a one-seed grid of 40 classes a 1 x 40 strip; this makes it 8 x 5."""
    divisors = [d for d in range(1, classes + 1) if classes % d == 0]
    return min(divisors, key=lambda d: (round(abs(math.log(seeds * d * d / classes)), 9), -d))


def mixed(request: GanRequest) -> bool:
    return request.style_mix_seed is not None or request.style_mix_seeds is not None


def style_mixing_grid(request: GanRequest, generator, caps: GanCapabilities, class_index: torch.Tensor,
                      options: dict, mixes: list[Image.Image]) -> Image.Image:
    """NVIDIA's style-mixing figure: the column seeds' own images along the top, the row seeds' down the left,
    and each row seed with the column seed's styles in the mixed layers where they cross."""
    def plain(seeds):
        z = torch.stack([seed_latent(s, caps.z_dim, caps.seed_rule) for s in seeds])
        classes = class_index.expand(len(seeds)).clone()
        return to_pil(synthesize(generator, z, classes, request.truncation_psi, request.truncation_cutoff,
                                 options=options, seeds=list(seeds)), caps.stylegan)
    columns, rows = plain(request.style_mix_seeds), plain(request.seeds)
    blank = Image.new("RGB", mixes[0].size, (255, 255, 255))
    cells = [blank, *columns]
    for r, row in enumerate(rows):
        cells += [row, *mixes[r * len(columns):(r + 1) * len(columns)]]
    return grid_image(cells, len(columns) + 1)


def describe(sample: GanSample, caps: GanCapabilities) -> str:
    where = (f"Plane {sample.position[0]:g}, {sample.position[1]:g}" if sample.position is not None
             else f"Seed {sample.seed}" if sample.seed is not None
             else "Projected latent" if sample.w is not None else "Imported latent")
    if sample.mix_seed is not None:
        where += f" × styles of {sample.mix_seed}"
    return f"{where} · {caps.class_names[sample.class_index]}" if caps.conditional else where


def infotext(request: GanRequest, sample: GanSample, caps: GanCapabilities, model_name: str, model_hash: str,
             extra: dict | None = None) -> str:
    """A1111's parameters line; `extra`: what extension scripts added (p.extra_generation_params)."""
    return format_infotext("", "", {
        "Seed": sample.name_seed,
        "Seed plane": None if sample.position is None else f"{sample.position[0]:g} {sample.position[1]:g}",
        "Latent": ("projected" if sample.w is not None else "imported")
        if sample.seed is None and sample.position is None else None,
        "Truncation psi": f"{request.truncation_psi:g}",
        "Truncation cutoff": request.truncation_cutoff,
        "Class": caps.class_names[sample.class_index] if caps.conditional else None,
        "Style mix seed": sample.mix_seed if sample.mix_seed is not None else request.style_mix_seed,
        "Style mix from": request.style_mix_from if mixed(request) else None,
        "Style mix to": request.style_mix_to if mixed(request) else None,
        "Noise mode": request.noise_mode if caps.stylegan else None,
        "Translate": f"{request.translate[0]:g} {request.translate[1]:g}" if request.translate != (0.0, 0.0) else None,
        "Rotate": f"{request.rotate:g}" if request.rotate else None,
        "Directions": "; ".join(f"{e['strength']:g} on {e['layers'][0]}-{e['layers'][1]}"
                                for e in request.directions) if request.directions else None,
        "Size": f"{caps.image_size}x{caps.image_size}" if caps.image_size else None,
        "Model hash": model_hash, "Model": model_name, **(extra or {}), "Version": VERSION,
    }).lstrip("\n")


def sample(request: GanRequest, generator, model_info, job: Job, hooks=None) -> GanResult:
    """Render every image of a validated request. `hooks` (modules/capabilities/scripting.Hooks, from the
    runner) hear of the batch, may replace each image (extensions' postprocess_image) and save it, with
    its infotext and state, into outputs/gan-images (the grid into gan-grids) when the request says so."""
    caps = capabilities(generator)
    check_layer_options(request, caps)
    check_stylegan_options(request, caps)
    samples = samples_for(request, caps)
    job.start(1, math.ceil(len(samples) / CHUNK))
    if hooks is not None:
        hooks.process_batch(0, [], [s.name_seed for s in samples])
    class_idx = torch.tensor([s.class_index for s in samples], dtype=torch.long)
    if samples[0].w is not None:
        if mixed(request):
            raise InvalidRequest("style_mix_seed", "a projected w has no seed to mix with: clear the style mix seed")
        return _finish(request, generator, model_info, job, hooks, caps, samples, to_pil(
            synthesize_projected(generator, samples, class_idx, request, job), caps.stylegan), {})
    z = torch.stack([s.z for s in samples])
    mix_z = None if request.style_mix_seed is None else \
        seed_latent(request.style_mix_seed, caps.z_dim, caps.seed_rule)[None]
    if request.style_mix_seeds is not None:
        mix_z = torch.stack([seed_latent(s.mix_seed, caps.z_dim, caps.seed_rule) for s in samples])
    options = synthesis_options(caps, request.noise_mode, request.translate, request.rotate)
    pictures = to_pil(synthesize(generator, z, class_idx, request.truncation_psi, request.truncation_cutoff,
                                 mix_z, request.style_mix_from, job, options, [s.name_seed for s in samples],
                                 request.style_mix_to, request.directions), caps.stylegan)
    return _finish(request, generator, model_info, job, hooks, caps, samples, pictures, options)


@torch.inference_mode()
def synthesize_projected(generator, samples: list[GanSample], class_idx: torch.Tensor, request: GanRequest,
                         job: Job) -> torch.Tensor:
    """Images of projected w latents (no mapping): ψ, cutoff and directions apply to them as to a seed's w."""
    caps = capabilities(generator)
    device = model_device(generator)
    options = synthesis_options(caps, request.noise_mode, request.translate, request.rotate)
    out = []
    for start in range(0, len(samples), CHUNK):
        job.check()
        part = samples[start:start + CHUNK]
        w = torch.stack([s.w for s in part]).to(device)
        w_avg = average_w(generator, class_idx[start:start + CHUNK].to(device))
        if not caps.num_ws:
            out.append(generator.synthesis(w_avg + request.truncation_psi * (w[:, 0] - w_avg)).clamp(-1, 1).float()
                       .cpu())
            continue
        out.append(synthesize_ws(generator, w, w_avg, request.truncation_psi, request.truncation_cutoff, options,
                                 [0] * len(part), request.directions))
    return torch.cat(out)


def _finish(request: GanRequest, generator, model_info, job: Job, hooks, caps: GanCapabilities,
            samples: list[GanSample], pictures: list[Image.Image], options: dict) -> GanResult:
    """Infotexts, states, saving and the grid of the rendered pictures."""
    class_idx = torch.tensor([s.class_index for s in samples], dtype=torch.long)
    extra = hooks.extra_infotext() if hooks is not None else {}
    result = GanResult(request, model_info.title, samples)
    for index, (s, picture) in enumerate(zip(samples, pictures)):
        text = infotext(request, s, caps, model_info.model_name, model_info.shorthash, extra)
        state = gan_state.state_of(request, s, caps, model_info)
        if hooks is not None:
            name_seed = s.name_seed if s.name_seed is not None else "latent"
            save_to = SaveSpec("gan-images", name_seed, {STATE_KEY: json.dumps(state)}) if request.save_images \
                else None
            picture, path = hooks.image_ready(picture, text, s.seed, index, save_to)
            if path is not None:
                result.paths.append(path)
        picture.info["parameters"] = text
        picture.info[STATE_KEY] = json.dumps(state)
        result.images.append(picture)
        result.infotexts.append(text)
        result.captions.append(describe(s, caps))
        result.states.append(state)
    if request.style_mix_seeds is not None:
        result.grid = style_mixing_grid(request, generator, caps, class_idx[0], options, result.images)
    elif len(pictures) > 1:
        result.grid = grid_image(result.images, grid_columns(request, len(pictures)))
    if result.grid is not None:
        grid_text = result.infotexts[0]
        if request.latents is None and request.position is None:
            grid_text = grid_text.replace(f"Seed: {samples[0].seed}", f"Seeds: {format_seeds(request.seeds)}", 1)
        export = gan_state.export_text(result.states)
        if request.save_images and hooks is not None:
            result.grid_path = hooks.save_image(result.grid, grid_text,
                                                SaveSpec("gan-grids", samples[0].name_seed or 0, {GRID_STATE_KEY: export}))
        result.grid.info["parameters"] = grid_text
        result.grid.info[GRID_STATE_KEY] = export
    return result
