"""The preview pictures of extra networks: which folder a card kind lists, the preview file of a listed network
(nothing else is ever served), and saving a generated picture as `name.preview.png` beside a network's file."""
from __future__ import annotations

from pathlib import Path

from PIL import Image

from modules.atomic_files import replacing
from modules.errors import InvalidRequest
from modules.networks.files import NetworkFile, NetworkFolder

TEXTUAL_INVERSION, LORA = "textual_inversion", "lora"
KINDS = {TEXTUAL_INVERSION: "Textual Inversion", LORA: "Lora"}  # A1111's tab titles
MEDIA_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}
PREVIEW_ROUTE = "/extra-networks/preview"  # ?kind=...&name=... (modules/api/preview_routes.py)
MAX_PREVIEW_SIDE = 512  # a card shows ~200 px: a saved preview is scaled down to this


def network_folder(backend, kind: str) -> NetworkFolder:
    if kind == TEXTUAL_INVERSION:
        return backend.embedding_files
    if kind == LORA:
        return backend.lora_files
    raise InvalidRequest("kind", f"{kind!r} is not an extra network kind: use {' or '.join(KINDS)}")


def find_network(folder: NetworkFolder, name: str) -> NetworkFile:
    """A listed network by its name (exact, as its card gives it); never a path of the caller's choosing."""
    found = next((f for f in folder.files() if f.name == name), None) if isinstance(name, str) else None
    if found is None:
        raise InvalidRequest("name", f"no extra network named {str(name)[:100]!r}: press refresh")
    return found


def preview_file(folder: NetworkFolder, name: str) -> Path | None:
    """The preview picture beside a listed network, if it has one of the picture types."""
    found = find_network(folder, name)
    if found.preview is None or found.preview.suffix.lower() not in MEDIA_TYPES:
        return None
    return found.preview


def preview_path(network: NetworkFile) -> Path:
    return network.path.parent / f"{network.path.stem}.preview.png"


def save_preview(folder: NetworkFolder, name: str, image: Image.Image) -> Path:
    """Write `image` (scaled to fit MAX_PREVIEW_SIDE) as the network's `name.preview.png`, replacing the old one
    whole or not at all."""
    network = find_network(folder, name)
    picture = image.convert("RGB")
    picture.thumbnail((MAX_PREVIEW_SIDE, MAX_PREVIEW_SIDE))
    target = preview_path(network)
    with replacing(target) as tmp:
        picture.save(tmp, format="PNG")
    return target
