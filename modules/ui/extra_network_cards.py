"""The Extra Networks panel's cards as one HTML block (A1111's cards): 2000 files are 2000 small <div>s, not
2000 Gradio components, and searching and sorting happen in the page (extra_networks.py's script). Every
name is escaped; a preview is fetched from the preview route by the network's name, never by a path."""
from __future__ import annotations

import html
import os
from dataclasses import dataclass
from urllib.parse import urlencode

from modules.networks.embeddings import Embeddings
from modules.public_paths import shown
from modules.networks.files import NetworkFile, NetworkFolder
from modules.networks.previews import LORA, PREVIEW_ROUTE, TEXTUAL_INVERSION

LORA_MULTIPLIER = 1  # A1111's default "extra_networks_default_multiplier"


@dataclass(frozen=True)
class Card:
    kind: str
    name: str
    relative: str  # the file's path in its folder: searched too, as in A1111
    mtime: float
    preview_version: int | None  # the preview's mtime (ns): a new preview gets a new URL; None: no preview
    prompt_text: str  # what a click adds to the prompt
    meta: str = ""  # "2 tokens"
    problem: str | None = None  # why the file cannot be used


def lora_cards(folder: NetworkFolder) -> list[Card]:
    return [Card(LORA, f.name, f.relative, f.mtime, _preview_version(f), f"<lora:{f.name}:{LORA_MULTIPLIER}>")
            for f in folder.files()]


def embedding_cards(embeddings: Embeddings) -> list[Card]:
    cards = []
    for f, data, problem in embeddings.read_all():
        meta = "" if data is None else f"{data.count} token{'s' if data.count != 1 else ''}"
        cards.append(Card(TEXTUAL_INVERSION, f.name, f.relative, f.mtime, _preview_version(f), f.name, meta, problem))
    return cards


def _preview_version(f: NetworkFile) -> int | None:
    if f.preview is None:
        return None
    try:
        return os.stat(f.preview).st_mtime_ns
    except OSError:
        return None


def render_cards(kind: str, cards: list[Card], folders: list) -> str:
    """The cards of one kind (sorted by name; the page re-sorts), or a note on where to put files."""
    if not cards:
        where = ", ".join(_escape(shown(folder)) for folder in folders)
        return f'<div class="zoo-en-empty">Nothing here yet: put files into {where}, then press refresh.</div>'
    return f'<div class="zoo-en-cards" data-kind="{kind}">' + "".join(_card(c) for c in cards) + "</div>"


def _escape(text: str) -> str:
    """HTML-escaped, and without the characters the panel's template language would read ($, {, }, `)."""
    return html.escape(text).translate(_TEMPLATE_CHARACTERS)


_TEMPLATE_CHARACTERS = str.maketrans({"$": "&#36;", "{": "&#123;", "}": "&#125;", "`": "&#96;"})


def _card(card: Card) -> str:
    e = _escape
    if card.preview_version is not None:
        query = urlencode({"kind": card.kind, "name": card.name, "v": card.preview_version})
        picture = f'<img class="zoo-en-preview" loading="lazy" alt="" src="{PREVIEW_ROUTE}?{e(query)}">'
    else:  # drawn by CSS: a coloured square with the name's first letter
        picture = f'<div class="zoo-en-placeholder" data-initial="{e(card.name[:1].upper())}"></div>'
    meta = f'<span class="zoo-en-meta">{e(card.meta)}</span>' if card.meta else ""
    problem = f'<span class="zoo-en-problem" title="{e(card.problem)}">⚠ cannot be used</span>' if card.problem else ""
    return (f'<div class="zoo-en-card" role="button" tabindex="0" data-name="{e(card.name)}" '
            f'data-search="{e((card.name + " " + card.relative).lower())}" data-date="{card.mtime:.3f}" '
            f'data-prompt="{e(card.prompt_text)}" title="{e(card.relative)}">{picture}'
            f'<button class="zoo-en-replace" type="button" title="Replace preview with the picked output picture">'
            f'set preview</button><div class="zoo-en-label"><span class="zoo-en-name">{e(card.name)}</span>{meta}{problem}'
            f'</div></div>')


CSS = """
.zoo-en-toolbar { display: flex; gap: 8px; align-items: center; margin-bottom: 8px; flex-wrap: wrap; }
.zoo-en-toolbar input[type=search] { flex: 1; min-width: 160px; padding: 4px 8px; }
.zoo-en-cards { display: flex; flex-wrap: wrap; gap: 8px; max-height: 480px; overflow-y: auto; }
.zoo-en-card { position: relative; width: 128px; height: 160px; border-radius: 8px; overflow: hidden;
  cursor: pointer; background: #2a2f3a; box-shadow: 0 1px 3px rgba(0,0,0,.3); flex: none; }
.zoo-en-card:focus { outline: 2px solid #f97316; }
.zoo-en-card[hidden] { display: none; }
.zoo-en-preview { width: 100%; height: 100%; object-fit: cover; image-rendering: auto; }
.zoo-en-placeholder { width: 100%; height: 100%;
  background: linear-gradient(135deg, #4b5563 0%, #1f2937 100%); display: flex; align-items: center;
  justify-content: center; }
.zoo-en-placeholder::after { content: attr(data-initial); font-size: 48px; font-weight: 700; color: #9ca3af; }
.zoo-en-label { position: absolute; left: 0; right: 0; bottom: 0; padding: 4px 6px; color: #fff;
  background: linear-gradient(transparent, rgba(0,0,0,.85)); font-size: 12px; word-break: break-word; }
.zoo-en-label span { display: block; color: #fff !important; margin: 0 !important; line-height: 1.3; }
.zoo-en-name { font-weight: 600; }
.zoo-en-meta { opacity: .85; }
.zoo-en-label .zoo-en-problem { color: #fca5a5 !important; }
.zoo-en-replace { position: absolute; top: 4px; right: 4px; display: none; border: none; border-radius: 4px;
  background: rgba(0,0,0,.65); color: #fff !important; cursor: pointer; padding: 2px 6px; font-size: 11px; }
.zoo-en-card:hover .zoo-en-replace, .zoo-en-card:focus-within .zoo-en-replace { display: block; }
.zoo-en-empty { color: #666; padding: 8px; }
"""
