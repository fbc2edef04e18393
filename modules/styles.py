"""Prompt styles in A1111's `styles.csv` (columns name, prompt, negative_prompt): saved pieces of prompt that
jobs add to the user's prompt and negative prompt when they run (A1111 ≥ 1.6: styles are applied at
processing time, the picked names travel with the request).

A style's text with `{prompt}` in it has the user's prompt put there; otherwise it is appended after ", "
(A1111's `merge_prompts`). The file is re-read when it changes on disk; it is treated as hostile: at most
MAX_FILE_BYTES and MAX_STYLES rows, each text within the prompt limit; a file beyond that is not used and
the reason is logged naming it. Saving rewrites it atomically (modules/atomic_files.py) in A1111's format."""
from __future__ import annotations

import csv
import io
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from modules.atomic_files import replacing
from modules.errors import InvalidRequest

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_STYLES = 2000
MAX_NAME_CHARS = 200
MAX_STYLE_CHARS = 4000  # per style text: several long prompts' worth
MAX_PICKED = 20  # styles one job may apply
FIELDS = ("name", "prompt", "negative_prompt")


@dataclass(frozen=True)
class PromptStyle:
    name: str
    prompt: str = ""
    negative_prompt: str = ""


def merge_prompts(style_prompt: str, prompt: str) -> str:
    """A1111's merge_prompts: the user's prompt at `{prompt}`, else the style after it with ", "."""
    if "{prompt}" in style_prompt:
        return style_prompt.replace("{prompt}", prompt)
    return ", ".join(part for part in (prompt.strip(), style_prompt.strip()) if part)


def apply_styles(prompt: str, negative_prompt: str, styles: list[PromptStyle]) -> tuple[str, str]:
    """The prompt and negative prompt with `styles` applied in order, as A1111 does."""
    for style in styles:
        prompt = merge_prompts(style.prompt, prompt)
        negative_prompt = merge_prompts(style.negative_prompt, negative_prompt)
    return prompt, negative_prompt


def styled_request_values(request, styles: list[PromptStyle]) -> dict:
    """A txt2img/img2img request's prompts with `styles` applied (hires fix's own prompts too, as A1111 does),
    the names moved from `styles` to `applied_styles`: for dataclasses.replace."""
    prompt, negative = apply_styles(request.prompt or "", request.negative_prompt or "", styles)
    values = {"prompt": prompt, "negative_prompt": negative, "styles": None,
              "applied_styles": tuple(style.name for style in styles)}
    hr_prompt, hr_negative = getattr(request, "hr_prompt", ""), getattr(request, "hr_negative_prompt", "")
    if hr_prompt or hr_negative:
        styled_hr, styled_hr_negative = apply_styles(hr_prompt or "", hr_negative or "", styles)
        values["hr_prompt"] = styled_hr if hr_prompt else ""
        values["hr_negative_prompt"] = styled_hr_negative if hr_negative else ""
    return values


def extract_styles(prompt: str, negative_prompt: str, styles: list[PromptStyle]) -> tuple[list[str], str, str]:
    """The styles a prompt pair was made with (A1111's extract_styles_from_prompt, for PNG Info): their names
    in the order they were applied, and the prompts without them. Each style is taken off at most once."""
    found: list[str] = []
    left = [style for style in styles if style.prompt or style.negative_prompt]
    while True:
        for style in left:
            matched, rest = _take_off(style.prompt, prompt)
            matched_negative, rest_negative = _take_off(style.negative_prompt, negative_prompt)
            if matched and matched_negative:
                prompt, negative_prompt = rest, rest_negative
                found.append(style.name)
                left.remove(style)
                break
        else:
            return list(reversed(found)), prompt, negative_prompt


def _take_off(style_text: str, prompt: str) -> tuple[bool, str]:
    stripped, style_text = prompt.strip(), style_text.strip()
    if "{prompt}" in style_text:
        left, _, right = style_text.partition("{prompt}")
        if stripped.startswith(left) and stripped.endswith(right) and len(stripped) >= len(left) + len(right):
            return True, stripped[len(left):len(stripped) - len(right)]
        return False, prompt
    if stripped.endswith(style_text):
        rest = stripped[:len(stripped) - len(style_text)]
        return True, rest[:-2] if rest.endswith(", ") else rest
    return False, prompt


def parse_styles(text: str, source: str = "styles.csv") -> list[PromptStyle]:
    """Styles from a styles.csv's text; InvalidRequest naming `source` when it is beyond the bounds."""
    if len(text) > MAX_FILE_BYTES:
        raise InvalidRequest(source, f"is over {MAX_FILE_BYTES // (1024 * 1024)} MB")
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""), skipinitialspace=True)
    try:
        header = next(reader, None)
        if header is None:
            return []
        columns = [name.strip() for name in header]
        if "name" not in columns:
            raise InvalidRequest(source, "has no `name` column (A1111's columns: name, prompt, negative_prompt)")
        prompt_column = "prompt" if "prompt" in columns else "text"  # A1111's older "name, text" files
        styles: dict[str, PromptStyle] = {}
        for line, row in enumerate(reader, start=2):
            if line - 1 > MAX_STYLES:
                raise InvalidRequest(source, f"has over {MAX_STYLES} styles")
            values = dict(zip(columns, row))
            name = values.get("name", "")
            if not row or not name or name.startswith("#"):
                continue  # blank lines and A1111's comment rows
            style = PromptStyle(name, values.get(prompt_column, "") or "", values.get("negative_prompt", "") or "")
            _check_style(style, f"{source} line {line}")
            styles[name] = style
    except csv.Error as e:  # a field over csv's size limit, a NUL byte ...
        raise InvalidRequest(source, f"is not a CSV file A1111 could read: {e}") from None
    return list(styles.values())


def format_styles(styles: list[PromptStyle]) -> str:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(FIELDS)
    for style in styles:
        writer.writerow([style.name, style.prompt, style.negative_prompt])
    return out.getvalue()


def _check_style(style: PromptStyle, where: str) -> None:
    if len(style.name) > MAX_NAME_CHARS:
        raise InvalidRequest(where, f"a style name is over {MAX_NAME_CHARS} characters")
    for text in (style.prompt, style.negative_prompt):
        if len(text) > MAX_STYLE_CHARS:
            raise InvalidRequest(where, f"style {style.name[:50]!r} has a text over {MAX_STYLE_CHARS} characters")
        if "\x00" in text or "\x00" in style.name:
            raise InvalidRequest(where, "contains a NUL character")


class StyleFile:
    """The styles of one styles.csv, re-read when the file changes."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._styles: list[PromptStyle] = []
        self._unreadable = False  # the file is there but was refused: never overwritten by a save

    def styles(self) -> list[PromptStyle]:
        with self._lock:
            try:
                stat = self.path.stat()
                stamp = (stat.st_mtime_ns, stat.st_size)
            except OSError:
                stamp = None
            if stamp != self._stamp:
                self._stamp = stamp
                self._unreadable = False
                self._styles = self._read() if stamp is not None else []
            return list(self._styles)

    def _read(self) -> list[PromptStyle]:
        try:
            if self.path.stat().st_size > MAX_FILE_BYTES:
                raise InvalidRequest(str(self.path), f"is over {MAX_FILE_BYTES // (1024 * 1024)} MB")
            text = self.path.read_text(encoding="utf-8-sig")
            return parse_styles(text, str(self.path))
        except (InvalidRequest, OSError, UnicodeDecodeError) as e:
            log.warning("styles not used: %s", e)
            self._unreadable = True
            return []

    def resolve(self, names) -> list[PromptStyle]:
        """The styles `names` picks, in order; an unknown name is an InvalidRequest naming `styles`."""
        if names is None:
            return []
        if isinstance(names, str) or not isinstance(names, (list, tuple)):
            raise InvalidRequest("styles", "must be a list of style names")
        if len(names) > MAX_PICKED:
            raise InvalidRequest("styles", f"picks {len(names)} styles; at most {MAX_PICKED}")
        known = {style.name: style for style in self.styles()}
        picked = []
        for name in names:
            if not isinstance(name, str):
                raise InvalidRequest("styles", "must be a list of style names")
            if name not in known:
                shown = name if len(name) <= 60 else name[:60] + "…"
                raise InvalidRequest("styles", f"no style is named {shown!r}"
                                               + (f" (known: {', '.join(sorted(known)[:10])})" if known else
                                                  " (there are no saved styles)"))
            picked.append(known[name])
        return picked

    def save(self, style: PromptStyle) -> None:
        """Add `style`, or replace the one with its name, and write the file in A1111's format."""
        name = style.name.strip() if isinstance(style.name, str) else ""
        if not name:
            raise InvalidRequest("style name", "give the style a name")
        style = PromptStyle(name, style.prompt or "", style.negative_prompt or "")
        _check_style(style, "style name" if len(name) > MAX_NAME_CHARS else "prompt")
        current = self.styles()
        if self._unreadable:
            raise InvalidRequest(str(self.path), "cannot be read (see the server's log): not overwriting it")
        styles = [s for s in current if s.name != name]
        if len(styles) >= MAX_STYLES:
            raise InvalidRequest("style name", f"there are {MAX_STYLES} styles already")
        styles.append(style)
        with self._lock:
            with replacing(self.path) as tmp:
                tmp.write_text(format_styles(styles), encoding="utf-8-sig", newline="")
            self._stamp = None  # read back next time
