"""What every model file the app lists shows users, checkpoints (registry.py) and zoo models (zoo_registry.py)
alike: whether it can be used, its short hash, and its title as A1111 writes it ("name [hash]")."""
from __future__ import annotations

from modules.models.hashing import short_hash


class ListedFile:
    """For a dataclass with the fields `name` (as users see it), `sha256` (None until hashed) and `error` (why it
    cannot be used, None when it can)."""

    @property
    def usable(self) -> bool:
        return self.error is None

    @property
    def shorthash(self) -> str:
        return short_hash(self.sha256) if self.sha256 else ""

    @property
    def title(self) -> str:
        return f"{self.name} [{self.shorthash}]" if self.sha256 else self.name
