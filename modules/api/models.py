"""Request and response schemas of /sdapi/v1, with A1111's field names and defaults.

Only the fields we act on are declared; any other A1111 field is accepted at its neutral value (so
clients that send every field keep working) and refused with a 422 naming it when it asks for a feature
this server lacks (modules/api/unsupported.py): never silently ignored. Ranges are checked by the job's own
request type (Txt2ImgRequest.validated), so the UI and the API refuse the same values with the
same message."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

TASK_ID_PATTERN = r"^[A-Za-z0-9_.:()\[\]-]{1,128}$"


class Txt2ImgApiRequest(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())

    prompt: str | None = ""
    negative_prompt: str | None = ""
    seed: int = Field(-1, description="-1 picks a random seed; seeds up to 2**64 - 1 wrap to 32 bits, as torch does")
    subseed: int = Field(-1, description="Variation seed (-1: random)")
    subseed_strength: float = Field(0.0, description="Variation strength: 0 the seed's picture, 1 the variation seed's")
    seed_resize_from_w: int = Field(-1, description="Resize seed from width (> 0 with the height: keep the "
                                                    "composition of the seed at that size)")
    seed_resize_from_h: int = Field(-1, description="Resize seed from height")
    sampler_name: str | None = Field(None, description="A1111 sampler name, e.g. 'Euler a', 'DPM++ 2M'")
    sampler_index: str | None = Field("Euler", description="Older name of sampler_name; used when that is empty")
    scheduler: str | None = Field(None, description="Schedule type (A1111 ≥ 1.9): 'Automatic', 'Uniform', 'Karras', "
                                                 "'Exponential', 'SGM Uniform', 'Simple', 'Beta', 'Align Your Steps'")
    styles: list | None = Field(None, description="Prompt styles by name (GET /sdapi/v1/prompt-styles), applied "
                                                  "to the prompt and negative prompt in order")
    batch_size: int = 1
    n_iter: int = Field(1, description="Batch count")
    steps: int = 50
    cfg_scale: float = 7.0
    distilled_cfg_scale: float = Field(3.5, description="FLUX.1 dev's guidance input (Forge's name); "
                                                        "other models ignore it")
    width: int = 512
    height: int = 512
    override_settings: dict[str, Any] = Field(
        default_factory=dict,
        description="Options for this job only: sd_model_checkpoint, CLIP_stop_at_last_layers")
    send_images: bool = True
    tiling: bool = Field(False, description="Pictures that tile seamlessly (A1111's Tiling)")
    restore_faces: bool | None = Field(None, description="Restore faces with the face_restoration_model option's "
                                                      "restorer (GFPGAN from models/GFPGAN), as A1111")
    save_images: bool = False
    task_id: str | None = Field(None, pattern=TASK_ID_PATTERN,
                                description="Your id for this job, for progress, interrupt and skip")
    force_task_id: str | None = Field(None, pattern=TASK_ID_PATTERN, description="A1111's name for task_id")
    script_name: str | None = Field(None, description="A selectable script (GET /sdapi/v1/scripts), e.g. 'X/Y/Z plot'")
    script_args: list = Field(default_factory=list, description="The script's control values, in the order of "
                                                                "GET /sdapi/v1/script-info; missing ones: defaults")
    alwayson_scripts: dict[str, Any] = Field(default_factory=dict,
                                             description='Always-on scripts\' values: {"title": {"args": [...]}}')
    enable_hr: bool = Field(False, description="Hires fix: a second, img2img pass at a larger size")
    hr_scale: float = Field(2.0, description="Hires fix: upscale by this factor (unless hr_resize_x/y are set)")
    hr_resize_x: int = Field(0, description="Hires fix: resize width to (0: from hr_scale, or the aspect ratio)")
    hr_resize_y: int = Field(0, description="Hires fix: resize height to (0: from hr_scale, or the aspect ratio)")
    hr_upscaler: str | None = Field("Latent", description="GET upscalers or latent-upscale-modes")
    hr_second_pass_steps: int = Field(0, description="Hires steps (0: as many as steps)")
    denoising_strength: float | None = Field(None, description="Hires fix's denoising strength (default 0.7)")
    hr_sampler_name: str | None = Field(None, description="Hires sampler (empty: the first pass's)")
    hr_scheduler: str | None = Field(None, description="Hires schedule type (empty or 'Use same scheduler': the "
                                                       "first pass's; GET schedulers)")
    hr_prompt: str | None = Field("", description="Hires prompt (empty: the first pass's)")
    hr_negative_prompt: str | None = Field("", description="Hires negative prompt (empty: the first pass's)")
    refiner_checkpoint: str | None = Field(None, description="Refiner: a checkpoint (GET sd-models) of the same "
                                                             "latent space that takes over part-way (empty: none)")
    refiner_switch_at: float | None = Field(None, description="Refiner: the fraction of the schedule where it "
                                                              "takes over (default 0.8; 1 never)")


class Txt2ImgApiResponse(BaseModel):
    images: list[str] | None = Field(None, description="Base64 PNGs, each with its infotext `parameters` chunk")
    parameters: dict
    info: str = Field(description="JSON text: seeds, infotexts, checkpoint ...")
    warnings: list[str] = Field(default_factory=list, description="What went wrong without failing the job, e.g. "
                                "an image that could not be saved (a full disk): the image is still in `images`")


class TaskRef(BaseModel):
    task_id: str | None = Field(None, pattern=TASK_ID_PATTERN)


class ProgressResponse(BaseModel):
    progress: float = Field(description="0 to 1")
    eta_relative: float = Field(description="Seconds left (estimate)")
    state: dict
    current_image: str | None = Field(None, description="Base64 PNG of the live preview")
    textinfo: str | None = None
    task_id: str | None = None
    task_state: str | None = Field(None, description="queued, running, done, failed, interrupted or unknown")
    worker: dict | None = Field(None, description="--workers ray: the generation worker that runs the task "
                                                  "(replica), whether its model was loaded there already "
                                                  "(model_was_loaded) and, with LoRAs, whether they were attached "
                                                  "there already (loras_were_attached)")


class PngInfoRequest(BaseModel):
    image: str = Field(description="Base64 image, with or without a data: URL prefix")


class PngInfoResponse(BaseModel):
    info: str = Field(description="The infotext (`parameters`), or empty")
    items: dict = Field(description="The image's other text chunks")
    parameters: dict = Field(description="The infotext parsed into fields")


class SDModelItem(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    title: str
    model_name: str
    hash: str | None
    sha256: str | None
    filename: str
    config: str | None
    storage: str | None = Field(None, description="ours: how the file stores its denoiser when not as plain floats: "
                                                  "float8_e4m3fn (an fp8 file, kept in fp8), GGUF Q8_0, GGUF Q4_0 ...")


class SDVaeItem(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    model_name: str
    filename: str


class SamplerItem(BaseModel):
    name: str
    aliases: list[str]
    options: dict[str, Any]


class SchedulerItem(BaseModel):
    name: str
    label: str
    aliases: list[str] | None = None
    default_rho: float | None = None
    need_inner_model: bool | None = None


class MemoryResponse(BaseModel):
    ram: dict
    cuda: dict


class ScriptsList(BaseModel):
    txt2img: list = []
    img2img: list = []


class ScriptArg(BaseModel):
    label: str | None = None
    value: Any = None
    minimum: Any = None
    maximum: Any = None
    step: Any = None
    choices: list | None = None


class ScriptInfo(BaseModel):
    name: str = Field(description="The title in lower case, as A1111 lists it")
    title: str
    is_alwayson: bool
    is_img2img: bool = False
    tab: str
    extension: str
    args: list[ScriptArg]


class QueueResponse(BaseModel):
    running: int = Field(description="jobs on the device now (at most 1)")
    waiting: int = Field(description="jobs waiting for the device")
    limit: int | None = Field(description="--queue-limit: one more waiting job is answered 503 (busy)")
    peak_running: int = Field(description="the most jobs ever seen on the device at once since the start")


class PromptStyleItem(BaseModel):
    name: str
    prompt: str | None = None
    negative_prompt: str | None = None
