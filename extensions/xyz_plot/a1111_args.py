"""A1111's `script_args` for "X/Y/Z plot" (v1.10.1's scripts/xyz_grid.py ui(): 18 values), read into ours.

    [x_type, x_values, x_values_dropdown, y_type, y_values, y_values_dropdown, z_type, z_values,
     z_values_dropdown, draw_legend, include_lone_images, include_sub_grids, no_fixed_seeds, vary_seeds_x,
     vary_seeds_y, vary_seeds_z, margin_size, csv_mode]

A type is an index into A1111's list of txt2img axes (its dropdown has type="index") or a label. An axis
with choices (Sampler, Checkpoint name) takes its values from the dropdown list unless csv_mode is on.
An axis, or an option, this plot does not have is refused naming it, never silently left out."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from io import StringIO

from modules.errors import InvalidRequest
from modules.user_values import shown

A1111_ARG_COUNT = 18
# A1111's txt2img axis labels, in its order (the index an API client sends).
A1111_TXT2IMG_AXES = (
    "Nothing", "Seed", "Var. seed", "Var. strength", "Steps", "Hires steps", "CFG Scale", "Prompt S/R",
    "Prompt order", "Sampler", "Hires sampler", "Checkpoint name", "Negative Guidance minimum sigma",
    "Sigma Churn", "Sigma min", "Sigma max", "Sigma noise", "Schedule type", "Schedule min sigma",
    "Schedule max sigma", "Schedule rho", "Beta schedule alpha", "Beta schedule beta", "Eta", "Clip skip",
    "Denoising", "Initial noise multiplier", "Extra noise", "Hires upscaler", "VAE", "Styles", "UniPC Order",
    "Face restore", "Token merging ratio", "Token merging ratio high-res", "Always discard next-to-last sigma",
    "SGM noise multiplier", "Refiner checkpoint", "Refiner switch at", "RNG source", "FP8 mode", "Size")
OURS = {"Nothing": "Nothing", "Seed": "Seed", "Steps": "Steps", "CFG Scale": "CFG Scale", "Prompt S/R": "Prompt S/R",
        "Sampler": "Sampler", "Checkpoint name": "Checkpoint"}
WITH_CHOICES = {"Sampler", "Checkpoint name"}  # A1111 reads their values from the dropdown
AXIS_NAMES = ("X", "Y", "Z")


@dataclass
class PlotArgs:
    types_and_values: list          # [(our axis label, values text)] for X, Y, Z
    draw_legend: bool = True
    include_cells: bool = False
    fixed_seed: bool = True         # False: A1111's "Keep -1 for seeds"
    vary_seeds: tuple[bool, bool, bool] = (False, False, False)


def is_a1111_layout(args: tuple) -> bool:
    return len(args) == A1111_ARG_COUNT


def from_a1111(args: tuple) -> PlotArgs:
    (x_type, x_values, x_drop, y_type, y_values, y_drop, z_type, z_values, z_drop, draw_legend, include_lone_images,
     include_sub_grids, no_fixed_seeds, vary_x, vary_y, vary_z, margin_size, csv_mode) = args
    if include_sub_grids:
        raise InvalidRequest("Include Sub Grids", "True is not supported: the plot makes one grid of all Z values")
    if margin_size not in (None, 0, 0.0, False):
        raise InvalidRequest("Grid margins (px)", f"{shown(margin_size)} is not supported: only 0")
    axes = []
    for name, kind, text, dropdown in zip(AXIS_NAMES, (x_type, y_type, z_type), (x_values, y_values, z_values),
                                          (x_drop, y_drop, z_drop)):
        label = _a1111_label(kind, f"{name} type")
        if label not in OURS:
            available = ", ".join(OURS)
            raise InvalidRequest(f"{name} type", f"{label!r} is not available in this X/Y/Z plot: one of {available}")
        if label in WITH_CHOICES and not csv_mode and dropdown:
            text = _as_csv(dropdown, f"{name} values")
        axes.append((OURS[label], text if isinstance(text, str) or text is None else str(text)))
    return PlotArgs(axes, bool(draw_legend), bool(include_lone_images), not no_fixed_seeds,
                    (bool(vary_x), bool(vary_y), bool(vary_z)))


def _a1111_label(kind, field: str) -> str:
    if kind is None:
        return "Nothing"
    if isinstance(kind, int) and not isinstance(kind, bool):
        if 0 <= kind < len(A1111_TXT2IMG_AXES):
            return A1111_TXT2IMG_AXES[kind]
        raise InvalidRequest(field, f"{kind} is not an axis index: 0 to {len(A1111_TXT2IMG_AXES) - 1}")
    if isinstance(kind, str):
        text = kind.strip().lower()
        for label in (*A1111_TXT2IMG_AXES, "Checkpoint"):
            if label.lower() == text:
                return "Checkpoint name" if label == "Checkpoint" else label
    raise InvalidRequest(field, f"unknown axis {shown(kind)}")


def _as_csv(values, field: str) -> str:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise InvalidRequest(field, f"must be a list of names, got {shown(values)}")
    out = StringIO()
    csv.writer(out).writerow(values)
    return out.getvalue().strip()


def seed_offset(vary: tuple[bool, bool, bool], index: tuple[int, int, int], sizes: tuple[int, int, int]) -> int:
    """What A1111 adds to a cell's seed with "Vary seeds for X/Y/Z"."""
    x_dim = sizes[0] if vary[0] else 1
    y_dim = sizes[1] if vary[1] else 1
    return ((index[0] if vary[0] else 0) + (index[1] * x_dim if vary[1] else 0)
            + (index[2] * x_dim * y_dim if vary[2] else 0))
