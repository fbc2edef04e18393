"""Drawing the X/Y/Z plot: cells in rows (Y) and columns (X), column labels on top, row labels on the left,
one such grid per Z value side by side, each titled with its Z label.

The font is Pillow's built-in one (ImageFont.load_default(size=...)): it needs no font file and no internet."""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

BACKGROUND = (255, 255, 255)
TEXT = (0, 0, 0)
Z_GAP = 24  # pixels between the grids of two Z values


@functools.lru_cache(maxsize=16)
def font_for(cell_width: int) -> ImageFont.FreeTypeFont:
    """DejaVu Sans where the system has it (it draws ψ and most scripts), else Pillow's own font."""
    size = max(12, min(36, round(cell_width / 12)))
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default(size=size)


def drawable(text: str, font) -> str:
    """Pillow's own font has no Greek: write ψ out there."""
    if "DejaVu" in (font.getname()[0] or ""):
        return text
    return text.replace("ψ", "psi")


def wrap(text: str, font, width: int) -> list[str]:
    """Lines of `text` that fit `width` pixels, broken at spaces (a word longer than the width stays whole)."""
    lines: list[str] = []
    for paragraph in drawable(str(text), font).split("\n"):
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if line and font.getlength(candidate) > width:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    return lines


@dataclass(frozen=True)
class Layout:
    """Where things go in one grid (pixels)."""
    cell_width: int
    cell_height: int
    columns: int
    rows: int
    left: int        # width of the row-label column (0 without row labels)
    top: int         # height of the column-label strip (and the title above it)
    title: int       # height of the title strip, part of `top`

    @property
    def size(self) -> tuple[int, int]:
        return self.left + self.columns * self.cell_width, self.top + self.rows * self.cell_height

    def cell_box(self, column: int, row: int) -> tuple[int, int, int, int]:
        x, y = self.left + column * self.cell_width, self.top + row * self.cell_height
        return x, y, x + self.cell_width, y + self.cell_height


def row_label_limit(cell_width: int, font) -> int:
    """Row labels wrap at this width: a cell's width, but room for a short label beside small cells."""
    return max(cell_width, 10 * font.size)


def line_height(font) -> int:
    ascent, descent = font.getmetrics()
    return ascent + descent + 2


def text_block_height(lines: list[str], font) -> int:
    return len(lines) * line_height(font)


def layout(cell_size: tuple[int, int], x_labels: list[str], y_labels: list[str], title: str = "") -> Layout:
    width, height = cell_size
    font = font_for(width)
    pad = font.size // 2
    labelled_columns = any(x_labels)
    labelled_rows = any(y_labels)
    top = max((text_block_height(wrap(t, font, width - 2 * pad), font) for t in x_labels), default=0) + 2 * pad \
        if labelled_columns else 0
    row_label_width = row_label_limit(width, font)
    left = (math.ceil(max(font.getlength(line) for t in y_labels for line in wrap(t, font, row_label_width)))
            + 2 * pad) if labelled_rows else 0
    title_height = text_block_height(wrap(title, font, max(left + width * len(x_labels), 1)), font) + pad \
        if title else 0
    return Layout(width, height, len(x_labels), len(y_labels), left, top + title_height, title_height)


def draw_grid(cells: list[list[Image.Image]], x_labels: list[str], y_labels: list[str],
              title: str = "") -> Image.Image:
    """cells[row][column] (all the size of cells[0][0]; others are resized) under their labels."""
    first = cells[0][0]
    where = layout(first.size, x_labels, y_labels, title)
    grid = Image.new("RGB", where.size, BACKGROUND)
    draw = ImageDraw.Draw(grid)
    font = font_for(where.cell_width)
    pad = font.size // 2
    if title:
        _centered(draw, wrap(title, font, where.size[0]), font, (0, 0, where.size[0], where.title))
    for column, label in enumerate(x_labels):
        x0, _, x1, _ = where.cell_box(column, 0)
        lines = wrap(label, font, where.cell_width - 2 * pad)
        _centered(draw, lines, font, (x0, where.title, x1, where.top))
    for row, label in enumerate(y_labels):
        _, y0, _, y1 = where.cell_box(0, row)
        lines = wrap(label, font, row_label_limit(where.cell_width, font))
        _centered(draw, lines, font, (0, y0, where.left, y1))
    for row, images in enumerate(cells):
        for column, image in enumerate(images):
            if image is None:
                continue
            if image.size != first.size:
                image = image.resize(first.size, Image.LANCZOS)
            grid.paste(image.convert("RGB"), where.cell_box(column, row)[:2])
    return grid


def side_by_side(grids: list[Image.Image], gap: int = Z_GAP) -> Image.Image:
    """The grids of several Z values in one picture, top-aligned."""
    if len(grids) == 1:
        return grids[0]
    width = sum(g.width for g in grids) + gap * (len(grids) - 1)
    combined = Image.new("RGB", (width, max(g.height for g in grids)), BACKGROUND)
    x = 0
    for g in grids:
        combined.paste(g, (x, 0))
        x += g.width + gap
    return combined


def _centered(draw: ImageDraw.ImageDraw, lines: list[str], font, box: tuple[int, int, int, int]) -> None:
    x0, y0, x1, y1 = box
    height = text_block_height(lines, font)
    y = y0 + (y1 - y0 - height) / 2
    for line in lines:
        draw.text(((x0 + x1) / 2, y), line, font=font, fill=TEXT, anchor="ma")
        y += line_height(font)
