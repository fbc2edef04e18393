"""Drawing the X/Y/Z plot: cells in rows (Y) and columns (X), column labels on top, row labels on the left,
one such grid per Z value side by side, each titled with its Z label.

Readable at any cell size: small cells (the zoo's 32-px images) are drawn larger by a whole factor with
nearest-neighbour (pixels stay sharp), so a label has room at a legible size; labels wrap at spaces, and a
word wider than its cell is broken, so no label ever runs into its neighbour.

The font is Pillow's built-in one (ImageFont.load_default(size=...)): it needs no font file and no internet."""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

BACKGROUND = (255, 255, 255)
TEXT = (0, 0, 0)
Z_GAP = 24  # pixels between the grids of two Z values
MIN_CELL_SIDE = 160  # cells are drawn at least this large (by a whole factor): room for a 14-px label
MIN_FONT, MAX_FONT = 14, 36


def cell_scale(cell_size: tuple[int, int]) -> int:
    """The whole factor a cell is drawn larger by: 1 for cells of MIN_CELL_SIDE and more."""
    return max(1, -(-MIN_CELL_SIDE // max(1, max(cell_size))))


def scaled(cell_size: tuple[int, int]) -> tuple[int, int]:
    factor = cell_scale(cell_size)
    return cell_size[0] * factor, cell_size[1] * factor


@functools.lru_cache(maxsize=16)
def font_for(cell_width: int) -> ImageFont.FreeTypeFont:
    """DejaVu Sans where the system has it (it draws ψ and most scripts), else Pillow's own font."""
    size = max(MIN_FONT, min(MAX_FONT, round(cell_width / 12)))
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
    """Lines of `text` that fit `width` pixels, broken at spaces; a word wider than that is broken too."""
    lines: list[str] = []
    for paragraph in drawable(str(text), font).split("\n"):
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if font.getlength(candidate) <= width:
                line = candidate
                continue
            if line:
                lines.append(line)
            pieces = _broken(word, font, width)
            lines += pieces[:-1]
            line = pieces[-1]
        lines.append(line)
    return lines


def _broken(word: str, font, width: int) -> list[str]:
    """A word cut into pieces that fit `width` (at least one character each)."""
    pieces, piece = [], ""
    for character in word:
        if piece and font.getlength(piece + character) > width:
            pieces.append(piece)
            piece = character
        else:
            piece += character
    return pieces + [piece]


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
    """`cell_size`: the images' own size; the layout's cells are that times cell_scale()."""
    width, height = scaled(cell_size)
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
              title: str = "", text_boxes: list | None = None) -> Image.Image:
    """cells[row][column] (all the size of cells[0][0]; others are resized) under their labels, drawn
    cell_scale() times larger. `text_boxes`, when given, receives the box of every line of text drawn."""
    first = cells[0][0]
    where = layout(first.size, x_labels, y_labels, title)
    cell = (where.cell_width, where.cell_height)
    grid = Image.new("RGB", where.size, BACKGROUND)
    draw = ImageDraw.Draw(grid)
    font = font_for(where.cell_width)
    pad = font.size // 2
    if title:
        _centered(draw, wrap(title, font, where.size[0]), font, (0, 0, where.size[0], where.title), text_boxes)
    for column, label in enumerate(x_labels):
        x0, _, x1, _ = where.cell_box(column, 0)
        lines = wrap(label, font, where.cell_width - 2 * pad)
        _centered(draw, lines, font, (x0, where.title, x1, where.top), text_boxes)
    for row, label in enumerate(y_labels):
        _, y0, _, y1 = where.cell_box(0, row)
        lines = wrap(label, font, row_label_limit(where.cell_width, font))
        _centered(draw, lines, font, (0, y0, where.left, y1), text_boxes)
    for row, images in enumerate(cells):
        for column, image in enumerate(images):
            if image is None:
                continue
            if image.size != first.size:
                image = image.resize(first.size, Image.LANCZOS)
            if image.size != cell:
                image = image.resize(cell, Image.NEAREST)  # a whole factor: every pixel a sharp square
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


def _centered(draw: ImageDraw.ImageDraw, lines: list[str], font, box: tuple[int, int, int, int],
              text_boxes: list | None = None) -> None:
    x0, y0, x1, y1 = box
    height = text_block_height(lines, font)
    y = y0 + (y1 - y0 - height) / 2
    for line in lines:
        draw.text(((x0 + x1) / 2, y), line, font=font, fill=TEXT, anchor="ma")
        if text_boxes is not None and line:
            text_boxes.append(draw.textbbox(((x0 + x1) / 2, y), line, font=font, anchor="ma"))
        y += line_height(font)
