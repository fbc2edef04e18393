"""/zoo/v1/models/cached: what the model manager holds — checkpoints, β-VAEs, GANs, VAE files and data built
from them, one cache with one budget — as the Models tab shows it. Same login as /sdapi/v1."""
from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, Field


if TYPE_CHECKING:
    from modules.api.routes import Api

PREFIX = "/models"  # under the API's /zoo/v1 router


class CachedModelItem(BaseModel):
    title: str
    kind: str = Field(description="checkpoint, beta_vae, gan, vae_file, or data (built from a model)")
    architecture: str
    where: str = Field(description="device or RAM")
    bytes: int
    in_use: bool
    last_used: float = Field(description="Unix time")
    load_seconds: float
    swap_seconds: float | None
    reused_modules: int
    shared_components: list[str]


class CachedModelsResponse(BaseModel):
    ram_bytes: int
    ram_budget: int
    device_bytes: int
    device_budget: int | None
    device: str
    models: list[CachedModelItem] = Field(description="Most recently used first")


def add_routes(api: "Api") -> None:
    @api.zoo_router.get(PREFIX + "/cached", response_model=CachedModelsResponse, tags=["zoo: models"])
    def cached_models():
        """Every cached model and data set with its kind, size and place, and the cache's totals and budgets."""
        return {**api.backend.cache_totals(), "models": api.backend.cached_models()}

