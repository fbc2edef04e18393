"""/zoo/v1/models/cached: what the model manager holds — checkpoints, β-VAEs, GANs, VAE files and data built
from them, one cache with one budget — as the Models tab shows it. Same login as /sdapi/v1."""
from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from modules.api.errors import api_route_class

if TYPE_CHECKING:
    from modules.api.routes import Api

PREFIX = "/zoo/v1/models"


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
    router = APIRouter(prefix=PREFIX, route_class=api_route_class(api.logins),
                       dependencies=[Depends(api.current_user)], tags=["zoo: models"])

    @router.get("/cached", response_model=CachedModelsResponse)
    def cached_models():
        """Every cached model and data set with its kind, size and place, and the cache's totals and budgets."""
        return {**api.backend.cache_totals(), "models": api.backend.cached_models()}

    api.router.routes.extend(router.routes)  # full paths already: included as they are, docs and all
