"""A1111's LoRA routes (its extensions-builtin/Lora), over Backend.lora_files:

    GET  /sdapi/v1/loras          [{name, alias, path, metadata}] of models/Lora and --lora-dir
    POST /sdapi/v1/refresh-loras  rescan the folders (null, as A1111 answers)

`path` is shown relative to the app's folders (modules/public_paths.py), never absolute. `alias` is the
name kohya's trainer wrote into the file (`ss_output_name`), else the name; `metadata` the file's
safetensors metadata, JSON-looking values parsed as A1111 does."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from modules.public_paths import shown

if TYPE_CHECKING:
    from modules.api.routes import Api


class LoraItem(BaseModel):
    name: str = Field(description="What <lora:name:weight> in a prompt uses")
    alias: str
    path: str = Field(description="Relative to the app's folders")
    metadata: dict[str, Any]


def add_routes(api: "Api") -> None:
    @api.router.get("/loras", response_model=list[LoraItem])
    def loras():
        """The LoRA files a prompt can name with <lora:name:weight> (or <lora:alias:weight>)."""
        metadata = api.backend.lora_metadata
        return [{"name": file.name, "alias": metadata.alias(file), "path": shown(file.path),
                 "metadata": metadata.of(file)} for file in api.backend.lora_files.files()]

    @api.router.post("/refresh-loras")
    def refresh_loras() -> None:
        """Look at models/Lora and --lora-dir again."""
        api.backend.lora_files.refresh()
        return None
