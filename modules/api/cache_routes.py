"""/zoo/v1/models/cached: what the model manager holds — checkpoints, β-VAEs, GANs, VAE files and data built
from them, one cache with one budget — as the Models tab shows it. Same login as /sdapi/v1."""
from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, Field


if TYPE_CHECKING:
    from modules.api.routes import Api

PREFIX = "/models"  # under the API's /zoo/v1 router


class CachedComponent(BaseModel):
    name: str = Field(description="the pipeline's name for it: unet, transformer, vae, text_encoder_2 ... "
                                  "(module for a zoo model or VAE file)")
    dtype: str = Field(description="how its weights are stored: float16, bfloat16, float32, float8_e4m3fn (fp8 "
                                   "storage), GGUF Q8_0 / GGUF Q4_0 ... (several joined by +, largest share first)")
    device: str = Field(description="where its weights are now: cpu, cuda:0")
    bytes: int
    shared: bool = Field(description="the same weights serve another cached model too")


class CachedModelItem(BaseModel):
    title: str
    kind: str = Field(description="checkpoint, beta_vae, gan, vae_file, upscaler, face_restorer, preview, "
                                  "lpips, or data (built from a model)")
    architecture: str
    where: str = Field(description="device or RAM")
    bytes: int
    in_use: bool
    last_used: float = Field(description="Unix time")
    load_seconds: float
    swap_seconds: float | None
    reused_modules: int
    compile_seconds: float | None = Field(description="--compile: seconds its UNet/transformer spent compiling "
                                                      "(first call of each size); null when not compiled")
    shared_components: list[str]
    components: list[CachedComponent] = Field(description="its weight-holding parts, each counted in `bytes`")


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

