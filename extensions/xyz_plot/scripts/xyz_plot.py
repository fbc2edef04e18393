"""X/Y/Z plot: one image per combination of up to three axes' values, in a labelled grid.

txt2img axes: seed, steps, CFG scale, sampler, checkpoint, prompt search/replace.
GAN Sampler axes: seed and truncation ψ.

Every cell's request is built and validated before the first image is made, so a bad value fails at
once with a message, not after minutes. The grid is saved (outputs/txt2img-grids or gan-grids) with
the first cell's infotext plus the axes (X Type, X Values, ...)."""
from __future__ import annotations

import datetime
from dataclasses import replace
from pathlib import Path

from PIL import Image

from modules import images as image_files
from modules.errors import InvalidRequest
from modules.extensions import Script, ScriptOutput
from modules.capabilities.scripting import JobPart
from modules.generation.infotext import quote
from modules.capabilities.txt2img.run import Txt2ImgResult, resolve_seed
from modules.job_limits import check_grid

from ..xyz_axes import GAN_AXES, NOTHING, TXT2IMG_AXES, Axis, AxisContext, axis_values, find_axis
from ..a1111_args import PlotArgs, from_a1111, is_a1111_layout, seed_offset
from ..xyz_grid import draw_grid, side_by_side

TITLE = "X/Y/Z plot"
AXIS_NAMES = ("X", "Y", "Z")
GRID_FIELD = "X/Y/Z plot"  # the field a refusal of the whole grid names
GAN_CELL_SIDE = 128  # GAN cells are drawn at least this large (the built-in GAN makes 32 px images)


def plan(axes: list[Axis], request, backend, types_and_values: list) -> list[tuple[Axis, list, str]]:
    """[(axis, values, values text)] for X, Y and Z; checked, so nothing runs on a bad value."""
    planned = []
    for name, (axis_name, text) in zip(AXIS_NAMES, types_and_values):
        axis = find_axis(axes, axis_name, f"{name} type")
        values = axis_values(axis, text, AxisContext(request, backend, f"{name} values"))
        planned.append((axis, values, str(text or "")))
    return planned


def cell_count(planned) -> int:
    (_, xs, _), (_, ys, _), (_, zs, _) = planned
    return len(xs) * len(ys) * len(zs)


def cell_requests(request, planned, vary_seeds=(False, False, False)) -> dict[tuple[int, int, int], object]:
    """{(x, y, z): validated request} for every cell; `vary_seeds`: A1111's "Vary seeds for X/Y/Z"."""
    (x_axis, xs, _), (y_axis, ys, _), (z_axis, zs, _) = planned
    cells = {}
    for iz, z in enumerate(zs):
        for iy, y in enumerate(ys):
            for ix, x in enumerate(xs):
                cell = z_axis.apply(y_axis.apply(x_axis.apply(request, x), y), z)
                offset = seed_offset(vary_seeds, (ix, iy, iz), (len(xs), len(ys), len(zs)))
                if offset and cell.seed != -1:
                    cell = replace(cell, seed=(cell.seed + offset) % 2**32)
                cells[ix, iy, iz] = cell.validated()
    return cells


def infotext_params(planned) -> dict:
    params = {"Script": TITLE}
    for name, (axis, _values, text) in zip(AXIS_NAMES, planned):
        if axis is not NOTHING:
            params[f"{name} Type"] = axis.label
            params[f"{name} Values"] = text
    return params


def grid_image(planned, first_images: dict, cell_size: tuple[int, int], draw_legend: bool) -> Image.Image:
    (x_axis, xs, _), (y_axis, ys, _), (z_axis, zs, _) = planned
    x_labels = [x_axis.label_of(x) if draw_legend else "" for x in xs]
    y_labels = [y_axis.label_of(y) if draw_legend else "" for y in ys]
    blank = Image.new("RGB", cell_size, (255, 255, 255))
    grids = []
    for iz, z in enumerate(zs):
        rows = [[first_images.get((ix, iy, iz), blank) for ix in range(len(xs))] for iy in range(len(ys))]
        title = z_axis.label_of(z) if draw_legend and z_axis is not NOTHING else ""
        grids.append(draw_grid(rows, x_labels, y_labels, title))
    return side_by_side(grids)


def save_grid(grid: Image.Image, outdir, folder_name: str, seed: int, infotext: str) -> Path:
    folder = Path(outdir) / folder_name / datetime.date.today().isoformat()
    return image_files.save_image(grid, folder, seed, infotext)


def _components(tab: str, names: list[str]) -> list:
    import gradio as gr

    components = []
    for axis, default in zip(AXIS_NAMES, ("Seed", "Nothing", "Nothing")):
        with gr.Row():
            components.append(gr.Dropdown(names, value=default, label=f"{axis} type", scale=1,
                                          elem_id=f"xyz_{tab}_{axis.lower()}_type"))
            components.append(gr.Textbox("", label=f"{axis} values", scale=3, placeholder="1, 2, 3 or 1-5 (+2)",
                                         elem_id=f"xyz_{tab}_{axis.lower()}_values"))
    with gr.Row():
        components.append(gr.Checkbox(True, label="Draw legend", elem_id=f"xyz_{tab}_draw_legend"))
        components.append(gr.Checkbox(False, label="Include cell images", elem_id=f"xyz_{tab}_include_cells"))
    return components


def our_args(x_type="Seed", x_values="", y_type="Nothing", y_values="", z_type="Nothing", z_values="",
             draw_legend=True, include_cells=False) -> PlotArgs:
    return PlotArgs([(x_type, x_values), (y_type, y_values), (z_type, z_values)], draw_legend, include_cells)


class XYZPlot(Script):
    """txt2img: seed, steps, CFG scale, sampler, checkpoint, prompt S/R."""

    def title(self) -> str:
        return TITLE

    def show(self, tab: str):
        return tab == "txt2img"

    def ui(self, tab: str) -> list:
        return _components(tab, [a.label for a in TXT2IMG_AXES])

    def run(self, p, *args):
        """Our 8 arguments (ui()'s), or A1111's 18 (a1111_args.py)."""
        if is_a1111_layout(args):
            return self.plot(p, from_a1111(args))
        if len(args) > 8:
            raise InvalidRequest("script_args", f"{len(args)} values: give this plot's 8 (GET /sdapi/v1/script-info) "
                                                "or A1111's 18")
        return self.plot(p, our_args(*args))

    def plot(self, p, plot: PlotArgs):
        draw_legend, include_cells = plot.draw_legend, plot.include_cells
        # One seed for the whole plot unless an axis sets it: cells differ only by what the axes change.
        request = replace(p.request, seed=resolve_seed(p.request.seed)) if plot.fixed_seed else p.request
        planned = plan(TXT2IMG_AXES, request, p.backend, plot.types_and_values)
        limits = getattr(p.backend, "limits", None)
        if limits is not None:  # counted before a single cell's request is made
            count = cell_count(planned)
            check_grid(count * request.batch_count * request.batch_size, request.width * request.height, count,
                       limits, GRID_FIELD)
        cells = cell_requests(request, planned, plot.vary_seeds)
        if hasattr(p.backend, "check_limits"):  # an axis may set steps: every cell is checked before the first runs
            for cell in cells.values():
                p.backend.check_limits(cell)
        p.extra_generation_params.update(infotext_params(planned))
        checkpoint_axis = next((n for n, (axis, _, _) in enumerate(planned) if axis.label == "Checkpoint"), None)
        # With a checkpoint axis, all cells of one checkpoint run together: each is loaded once.
        order = sorted(cells, key=lambda k: (0 if checkpoint_axis is None else k[checkpoint_axis], k[2], k[1], k[0]))
        total = len(cells) * request.batch_count
        results: dict = {}
        for n, key in enumerate(order):
            if p.job.interrupt_requested:
                break
            results[key] = p.generate(cells[key], job=JobPart(p.job, n * request.batch_count, total))
        made = {k: r for k, r in results.items() if r.images}
        if not made:
            return Txt2ImgResult(request)
        first = made[min(made, key=lambda k: (k[2], k[1], k[0]))]
        grid = grid_image(planned, {k: r.images[0] for k, r in made.items()},
                          (request.width, request.height), bool(draw_legend))
        text = first.infotexts[0]
        grid.info["parameters"] = text
        output = Txt2ImgResult(request, images=[grid], infotexts=[text], seeds=[first.seeds[0]],
                               checkpoint_title=first.checkpoint_title)
        if request.save_images and p.outdir is not None:
            path = save_grid(grid, p.outdir, "txt2img-grids", first.seeds[0], text)
            output.paths.append(path)
            p.image_saved(grid, path, text)
        for key in sorted(made, key=lambda k: (k[2], k[1], k[0])):
            result = made[key]
            output.save_errors += result.save_errors
            if include_cells:
                output.images += result.images
                output.infotexts += result.infotexts
                output.seeds += result.seeds
                output.paths += result.paths
        return output


class XYZPlotGan(Script):
    """GAN Sampler: seed and truncation ψ."""

    def title(self) -> str:
        return TITLE

    def show(self, tab: str):
        return tab == "gan"

    def ui(self, tab: str) -> list:
        return _components(tab, [a.label for a in GAN_AXES])

    def run(self, p, x_type="Seed", x_values="", y_type="Nothing", y_values="", z_type="Nothing", z_values="",
            draw_legend=True, include_cells=False):
        seeds = p.request.seeds if isinstance(p.request.seeds, list) else [0]
        request = replace(p.request, seeds=seeds[:1], save_images=False, class_name=_one_class(p.request.class_name),
                          position=None, latents=None)
        planned = plan(GAN_AXES, request, p.backend, [(x_type, x_values), (y_type, y_values), (z_type, z_values)])
        limits = getattr(p.backend, "limits", None)
        if limits is not None:
            count = cell_count(planned)
            check_grid(count, GAN_CELL_SIDE * GAN_CELL_SIDE, count, limits, GRID_FIELD)
        cells = cell_requests(request, planned)
        results = {}
        for key in sorted(cells, key=lambda k: (k[2], k[1], k[0])):
            if p.job.interrupt_requested:
                break
            results[key] = p.generate(cells[key])
        made = {k: r for k, r in results.items() if r.images}
        if not made:
            return ScriptOutput()
        first_key = min(made, key=lambda k: (k[2], k[1], k[0]))
        cells = {k: crisp(r.images[0]) for k, r in made.items()}
        grid = grid_image(planned, cells, cells[first_key].size, bool(draw_legend))
        params = ", ".join(f"{k}: {quote(v)}" for k, v in infotext_params(planned).items())
        text = f"{made[first_key].infotexts[0]}, {params}"
        grid.info["parameters"] = text
        output = ScriptOutput(images=[grid], infotexts=[text])
        if p.request.save_images and p.outdir is not None:
            path = save_grid(grid, p.outdir, "gan-grids", made[first_key].samples[0].seed or 0, text)
            output.paths.append(path)
            p.image_saved(grid, path, text)
        if include_cells:
            for key in sorted(made, key=lambda k: (k[2], k[1], k[0])):
                output.images += made[key].images
                output.infotexts += made[key].infotexts
        return output


def crisp(image: Image.Image, at_least: int = GAN_CELL_SIDE) -> Image.Image:
    """A small GAN image scaled up by a whole factor (pixels stay sharp) so its labels fit above it."""
    factor = max(1, -(-at_least // max(image.size)))
    return image.resize((image.width * factor, image.height * factor), Image.NEAREST) if factor > 1 else image


def _one_class(class_name):
    from modules.capabilities.gan.request import ALL_CLASSES

    if class_name == ALL_CLASSES:
        raise InvalidRequest("class_name", "X/Y/Z plot draws one class: pick one")
    return class_name
