"""A1111's LoRA routes (its extensions-builtin/Lora), over Backend.lora_files:

    GET  /sdapi/v1/loras          [{name, alias, path, metadata}] of models/Lora and --lora-dir
    POST /sdapi/v1/refresh-loras  rescan the folders (null, as A1111 answers)

`path` is shown relative to the app's folders (modules/public_paths.py), never absolute. `alias` is the
name kohya's trainer wrote into the file (`ss_output_name`), else the name; `metadata` the file's
safetensors metadata, JSON-looking values parsed as A1111 does."""
from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from modules.errors import UserError
from modules.models.lora_files import lora_metadata
from modules.public_paths import shown

if TYPE_CHECKING:
    from modules.api.routes import Api


class LoraItem(BaseModel):
    name: str = Field(description="What <lora:name:weight> in a prompt uses")
    alias: str
    path: str = Field(description="Relative to the app's folders")
    metadata: dict[str, Any]


class MetadataCache:
    """Each file's metadata, read once per file version (a listing of 2000 LoRAs reads no header twice)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[tuple, dict]] = {}

    def get(self, file) -> dict[str, Any]:
        stamp = (file.mtime, file.size)
        with self._lock:
            known = self._entries.get(str(file.path))
        if known is not None and known[0] == stamp:
            return known[1]
        try:
            metadata = {key: _parsed(value) for key, value in lora_metadata(file.path).items()}
        except (UserError, OSError):  # a damaged file is listed without metadata; using it says what is wrong
            metadata = {}
        with self._lock:
            self._entries[str(file.path)] = (stamp, metadata)
        return metadata


def _parsed(value: str) -> Any:
    if value[:1] == "{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def add_routes(api: "Api") -> None:
    metadata = MetadataCache()

    @api.router.get("/loras", response_model=list[LoraItem])
    def loras():
        """The LoRA files a prompt can name with <lora:name:weight>."""
        items = []
        for file in api.backend.lora_files.files():
            meta = metadata.get(file)
            alias = meta.get("ss_output_name")
            items.append({"name": file.name, "alias": alias if isinstance(alias, str) and alias else file.name,
                          "path": shown(file.path), "metadata": meta})
        return items

    @api.router.post("/refresh-loras")
    def refresh_loras() -> None:
        """Look at models/Lora and --lora-dir again."""
        api.backend.lora_files.refresh()
        return None
