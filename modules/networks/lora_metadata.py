"""What a LoRA file says about itself: its safetensors metadata (kohya's `ss_*` training notes), read once per
file version, and the alias A1111 knows it by (`ss_output_name`, the name it was trained under), which
prompts copied from A1111 pictures often use instead of the file's name."""
from __future__ import annotations

import json
import threading
from typing import Any

from modules.errors import UserError
from modules.models.lora_files import lora_metadata
from modules.networks.files import NetworkFile


class LoraMetadata:
    def __init__(self):
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[tuple, dict]] = {}

    def of(self, file: NetworkFile) -> dict[str, Any]:
        """The file's metadata, JSON-looking values parsed as A1111 does; {} for a file without (or damaged)."""
        stamp = (file.mtime, file.size)
        with self._lock:
            known = self._entries.get(str(file.path))
        if known is not None and known[0] == stamp:
            return known[1]
        try:
            metadata = {key: _parsed(value) for key, value in lora_metadata(file.path).items()}
        except (UserError, OSError):  # listed without metadata; using the file says what is wrong with it
            metadata = {}
        with self._lock:
            self._entries[str(file.path)] = (stamp, metadata)
        return metadata

    def alias(self, file: NetworkFile) -> str:
        alias = self.of(file).get("ss_output_name")
        return alias.strip() if isinstance(alias, str) and alias.strip() else file.name

    def by_alias(self, files: list[NetworkFile], name: str) -> NetworkFile | None:
        """The one file whose alias is `name` (case-insensitive); None when no file, or several, have it
        (A1111 will not guess between them either)."""
        key = name.strip().lower()
        found = [f for f in files if self.alias(f).lower() == key]
        return found[0] if len(found) == 1 else None


def _parsed(value: str) -> Any:
    if value[:1] == "{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
