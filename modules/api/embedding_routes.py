"""/sdapi/v1/embeddings and refresh-embeddings: the textual-inversion embeddings in A1111's format, as the
caller's default checkpoint sees them ("loaded": they fit its text encoders; "skipped": another model's)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
from fastapi import Depends
from pydantic import BaseModel, Field

from modules import owners

if TYPE_CHECKING:
    from modules.api.routes import Api


class EmbeddingItem(BaseModel):
    step: int | None = Field(description="training steps, when the file says")
    sd_checkpoint: str | None = Field(description="hash of the checkpoint it was trained on, when the file says")
    sd_checkpoint_name: str | None
    shape: int = Field(description="vector width: 768 SD 1.x, 1024 SD 2.x, 2048 SDXL (768 + 1280)")
    vectors: int = Field(description="prompt tokens it takes")


class EmbeddingsResponse(BaseModel):
    loaded: dict[str, EmbeddingItem] = Field(description="usable with the default checkpoint, by prompt word")
    skipped: dict[str, EmbeddingItem] = Field(description="made for another model family (another width)")


def add_routes(api: "Api") -> None:
    owner = Depends(api.current_owner)

    def listing(user: str | None) -> dict:
        found = api.backend.embeddings_for_default(user)
        return {"loaded": {name: e.api_entry() for name, e in found.loaded.items()},
                "skipped": {name: e.api_entry() for name, e in found.skipped.items()}}

    @api.router.get("/embeddings", response_model=EmbeddingsResponse)
    async def embeddings(owner: str = owner):
        """Textual-inversion embeddings (models/embeddings, --embeddings-dir) against the default checkpoint.
        Files that cannot be used (not an embedding, or a pickle that needs more than weights) are in neither."""
        return await anyio.to_thread.run_sync(listing, owners.user_name(owner), limiter=api._light_threads)

    @api.router.post("/refresh-embeddings")
    async def refresh_embeddings():
        """Read the embedding folders again (they are also re-read when a folder changes)."""
        await anyio.to_thread.run_sync(api.backend.embeddings.refresh, limiter=api._light_threads)
        return None
