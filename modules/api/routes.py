"""/sdapi/v1: A1111's REST API over the backend, with per-task progress and users kept apart.

Thin adapters only: each route turns JSON into the backend's request types and calls the same
functions the UI calls. Beyond A1111: `task_id` on txt2img, progress, interrupt and skip. Callers are kept
apart (modules/owners.py): progress and interrupt see only the caller's own jobs, and task ids are per
caller (a logged-in user; without logins, the client address), so another caller's id is simply unknown."""
from __future__ import annotations

import argparse
import datetime
import json
import logging
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
from fastapi import APIRouter, Body, Depends, FastAPI, Query, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi

from modules.api import (a1111_lists, cache_routes, embedding_routes, extras_routes, gan_routes, img2img_routes,
                         latent_routes, lora_routes, models)
from modules.api.auth import Logins, api_logins
from modules.api.errors import ApiError, api_route_class
from modules.api.hires_fields import hires_fields
from modules.api.images import decode_image, encode_png
from modules.api.unsupported import refuse_unsupported, sampler_for_eta
from modules.capabilities.txt2img.request import Txt2ImgRequest
from modules.errors import BadModelFile, InvalidRequest, ModelNotFound
from modules.extensions import ScriptCall
from modules.generation.infotext import parse_infotext
from modules.generation.samplers import SAMPLERS, SCHEDULE_TYPES, find_schedule, resolve, split_name
from modules.images import read_parameters
from modules import owners
from modules.jobs import Job, TaskIdInUse
from modules.models.fifo_lock import QueueFull
from modules.models.vae_files import VaeFiles
from modules.public_paths import scrub, shown
from modules.security.admins import Admins
from modules.settings import Settings
from modules.option_changes import NotAdmin, save_options
from modules.version import APP_NAME, VERSION

log = logging.getLogger(__name__)

API_PREFIX = "/sdapi/v1"
ZOO_PREFIX = "/zoo/v1"
DOCS_PATHS = ("/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc")
SECRET_WORDS = ("auth", "password", "key", "secret", "token")
REDACTED = "<redacted>"
# Long jobs get their own worker threads, so a full queue never starves progress polls or the UI.
JOB_THREADS = 64
DISCONNECT_POLL_SECONDS = 0.25

# Txt2ImgRequest's field names -> the API's, for error messages.
_API_FIELD = {"batch_count": "n_iter", "checkpoint": "override_settings.sd_model_checkpoint",
              "clip_skip": "override_settings.CLIP_stop_at_last_layers",
              "eta_noise_seed_delta": "override_settings.eta_noise_seed_delta", "vae": "override_settings.sd_vae",
              "forge_additional_modules": "override_settings.forge_additional_modules", "sampler": "sampler_name"}


@contextmanager
def api_field_names():
    """An InvalidRequest about a Txt2ImgRequest field, renamed to the API's name for it."""
    try:
        yield
    except InvalidRequest as e:
        raise InvalidRequest(_API_FIELD.get(e.field, e.field), e.message) from None


class Api:
    def __init__(self, backend, args: argparse.Namespace, settings: Settings):
        self.backend = backend
        self.args = args
        self.settings = settings
        self.logins = Logins(api_logins(args))
        self.has_logins = self.logins.required
        self.current_user = self.logins.dependency()
        self.current_owner = self._owner_dependency()
        self.admins = Admins.from_args(args)
        # Room for every job the device queue admits (--queue-limit), so a full queue answers "busy" at once
        # instead of leaving requests waiting for a thread.
        queue_limit = backend.manager.device_lock.limit or 0
        self._job_threads = anyio.CapacityLimiter(max(JOB_THREADS, 2 * queue_limit + 8))
        self._light_threads = anyio.CapacityLimiter(4)
        self.router = APIRouter(prefix=API_PREFIX, route_class=api_route_class(self.logins),
                                dependencies=[Depends(self.current_user)],
                                tags=["sdapi"])
        self._add_routes()
        img2img_routes.add_routes(self)  # POST /sdapi/v1/img2img
        extras_routes.add_routes(self)  # /sdapi/v1/extra-single-image, upscalers ...
        lora_routes.add_routes(self)  # /sdapi/v1/loras, refresh-loras
        embedding_routes.add_routes(self)  # /sdapi/v1/embeddings, refresh-embeddings
        a1111_lists.add_routes(self)  # hypernetworks, face-restorers, extensions, refresh-vae ...
        self.ping_router = a1111_lists.ping_router(self)  # /internal/ping
        # Our own routes beyond A1111's (/zoo/v1/latent, /zoo/v1/gan), with the same logins and error answers.
        self.zoo_router = APIRouter(prefix=ZOO_PREFIX, route_class=api_route_class(self.logins),
                                    dependencies=[Depends(self.current_user)])
        latent_routes.add_routes(self)
        gan_routes.add_routes(self)
        cache_routes.add_routes(self)  # /zoo/v1/models/cached

    @property
    def routers(self) -> list[APIRouter]:
        return [self.router, self.zoo_router, self.ping_router]

    def _owner_dependency(self):
        """A FastAPI dependency: the owner of the caller's jobs (modules/owners.py), "user:<name>" with a login,
        else "api-anon:<address>": never an anonymous UI session's owner."""
        def current_owner(request: Request, user: str | None = Depends(self.current_user)) -> str:
            if user is not None:
                return owners.user(user)
            return owners.api_anonymous(request.client.host if request.client else None)
        return current_owner

    def _add_routes(self) -> None:
        r, owner = self.router, Depends(self.current_owner)

        @r.post("/txt2img", response_model=models.Txt2ImgApiResponse)
        async def txt2img(body: models.Txt2ImgApiRequest, http: Request, owner: str = owner):
            """Generate images. `override_settings.sd_model_checkpoint` picks the checkpoint for this job only.
            503 (busy) when --queue-limit jobs wait for the device already, 429 when --queue-per-user of them
            are yours."""
            # Busy: answered at once, without taking a worker thread. The owner is the job's (see _new_job).
            self.backend.device_line.refuse_if_full(owners.queue_user(owner))
            # In worker threads: finding a checkpoint may rescan the folders, and the job takes minutes.
            request = await anyio.to_thread.run_sync(self._txt2img_request, body, owner, limiter=self._job_threads)
            job = self._new_job("txt2img", body.task_id or body.force_task_id, owner)
            async with interrupt_on_disconnect(http, job):
                return await anyio.to_thread.run_sync(self._txt2img_answer, body, request, job,
                                                      limiter=self._job_threads)

        @r.get("/queue", response_model=models.QueueResponse)
        def queue():
            """Jobs on the device and waiting for it, and --queue-limit."""
            manager, line = self.backend.manager, self.backend.device_line
            running = manager.jobs_on_device if self.backend.workers is None else line.holding
            return {"running": running, "waiting": line.waiting, "limit": line.limit,
                    "peak_running": manager.peak_jobs_on_device}

        @r.get("/progress", response_model=models.ProgressResponse)
        async def progress(skip_current_image: bool = False,
                           task_id: str | None = Query(None, pattern=models.TASK_ID_PATTERN), owner: str = owner):
            """Progress of one of your tasks (`task_id`), else of your own running or queued job."""
            job = self._find_task(task_id, owner, must_exist=False) if task_id else self._current_job(owner)
            answer = _progress(job, task_id)
            preview = job.preview if job is not None and not skip_current_image else None
            if preview is not None:
                # Encoding a large preview takes a moment: not on the event loop that answers everyone.
                answer["current_image"] = await anyio.to_thread.run_sync(encode_png, preview,
                                                                         limiter=self._light_threads)
            return answer

        @r.post("/interrupt")
        async def interrupt(body: models.TaskRef | None = None,
                            task_id: str | None = Query(None, pattern=models.TASK_ID_PATTERN), owner: str = owner):
            """Stop a task of yours (finished images are kept): the one named, else all your jobs."""
            jobs = self._targets(task_id, body, owner, running=False)
            for job in jobs:
                job.interrupt()
            return {"interrupted": len(jobs)}

        @r.post("/skip")
        async def skip(body: models.TaskRef | None = None,
                       task_id: str | None = Query(None, pattern=models.TASK_ID_PATTERN), owner: str = owner):
            """Drop the current batch of a task and go on with the next."""
            jobs = self._targets(task_id, body, owner, running=True)
            for job in jobs:
                job.skip()
            return {"skipped": len(jobs)}

        @r.get("/sd-models", response_model=list[models.SDModelItem])
        def sd_models():
            return [{"title": c.title, "model_name": c.model_name, "hash": c.shorthash or None, "sha256": c.sha256,
                     "filename": shown(c.path), "config": shown(c.sidecar_config) if c.sidecar_config else None, "storage": c.stored_as}
                    for c in self.backend.registry.usable()]

        @r.get("/sd-vae", response_model=list[models.SDVaeItem])
        def sd_vae():
            return [{"model_name": path.name, "filename": shown(path)} for path in self._vae_files()]

        @r.get("/prompt-styles", response_model=list[models.PromptStyleItem])
        def prompt_styles():
            """The styles of styles.csv (--styles-file), as A1111 lists them."""
            return [{"name": style.name, "prompt": style.prompt, "negative_prompt": style.negative_prompt}
                    for style in self.backend.styles.styles()]

        @r.get("/sd-modules", response_model=list[models.SDVaeItem])
        def sd_modules():
            """Forge's list of VAE and text encoder files (override_settings.forge_additional_modules)."""
            return [{"model_name": f.name, "filename": shown(f.path)} for f in self.backend.manager.component_files.scan()]

        @r.get("/samplers", response_model=list[models.SamplerItem])
        def samplers():
            return [{"name": s.name, "aliases": list(s.aliases),
                     "options": {"scheduler": find_schedule(s.automatic).name} if s.automatic != "Uniform" else {}}
                    for s in SAMPLERS]

        @r.get("/schedulers", response_model=list[models.SchedulerItem])
        def schedulers():
            return [{"name": s.name, "label": s.label, "aliases": ["SGMUniform"] if s.name == "sgm_uniform" else None,
                     "default_rho": s.default_rho, "need_inner_model": False}
                    for s in SCHEDULE_TYPES]

        @r.get("/options")
        def get_options(owner: str = owner) -> dict[str, Any]:
            """Every option A1111 has, with our values for those we act on (a logged-in user sees their own
            per-user ones). `sd_model_checkpoint` is what a job that names no checkpoint gets."""
            return self._options(owners.user_name(owner))

        @r.post("/options")
        def set_options(body: dict[str, Any] = Body(..., examples=[{"sd_model_checkpoint": "tiny-sd15"}]),
                        owner: str = owner) -> None:
            """Save options (null, as A1111 answers). Those we act on are checked (a bad value: 422 naming the
            key, and nothing is saved); the others are kept as sent, within bounds. Jobs already running or
            queued keep their own values. With logins, a user's per-user options (checkpoint, VAE, image
            format, ...) are their own; the server-wide ones only a user named in --admin-users changes (403)."""
            user = owners.user_name(owner)
            admin = not self.admins.logins or self.admins.allows(user)
            try:
                save_options(self.backend, body, user if self.admins.logins else None, admin)
            except NotAdmin as e:
                raise ApiError(403, e.args[0], "only an admin may change the server-wide options: "
                                               f"{self.admins.refusal(user)}") from None
            return None

        @r.get("/cmd-flags")
        def cmd_flags() -> dict[str, Any]:
            """The command-line flags, with logins and key files shown as <redacted>, and paths relative to
            the app's folders (models/..., outputs/...)."""
            return redacted_flags(self.args)

        @r.post("/png-info", response_model=models.PngInfoResponse)
        def png_info(body: models.PngInfoRequest):
            """Read the generation parameters (infotext) of an image."""
            image = decode_image(body.image)
            text = read_parameters(image) or ""
            items = {k: v for k, v in image.info.items() if isinstance(k, str) and isinstance(v, str)
                     and k != "parameters"}
            return {"info": text, "items": items, "parameters": parse_infotext(text) if text else {}}

        @r.post("/refresh-checkpoints")
        async def refresh_checkpoints():
            titles = await anyio.to_thread.run_sync(self.backend.refresh_checkpoints, limiter=self._job_threads)
            return {"checkpoints": titles}

        @r.post("/unload-checkpoint")
        async def unload_checkpoint():
            """Free the memory of every checkpoint no job is using now (a running job keeps its own)."""
            await anyio.to_thread.run_sync(self.backend.manager.unload, limiter=self._job_threads)
            return {}

        @r.post("/reload-checkpoint")
        async def reload_checkpoint():
            """Load the default checkpoint onto the device."""
            model = await anyio.to_thread.run_sync(self.backend.manager.load, None, limiter=self._job_threads)
            return {"title": model.info.title}

        @r.get("/memory", response_model=models.MemoryResponse)
        def memory():
            return self.backend.memory_info()

        @r.get("/scripts", response_model=models.ScriptsList)
        def scripts():
            """The names of the txt2img and img2img scripts of enabled extensions (selectable and always-on)."""
            return {tab: [s.name for s in self.backend.extensions.scripts_for(tab)] for tab in ("txt2img", "img2img")}

        @r.get("/script-info", response_model=list[models.ScriptInfo])
        async def script_info():
            """Every script with its controls (label, default, range, choices): the order of script_args."""
            return await anyio.to_thread.run_sync(script_infos, self.backend.extensions, limiter=self._light_threads)

    # txt2img -----------------------------------------------------------------------------------

    def _txt2img_request(self, body: models.Txt2ImgApiRequest, owner: str | None = None) -> Txt2ImgRequest:
        """The job's request from A1111's field names; the runner validates it (api_field_names renames).
        A field asking for a feature this server lacks is a 422 naming it (modules/api/unsupported.py)."""
        refuse_unsupported(body)
        sampler_field = "sampler_name" if body.sampler_name else "sampler_index"
        try:
            split_name(body.sampler_name or body.sampler_index or "Euler")
        except InvalidRequest as e:
            raise InvalidRequest(sampler_field, e.message) from None
        # "DPM++ 2M Karras" (before A1111 1.9) is sampler "DPM++ 2M" with schedule type "Karras".
        sampler, scheduler = resolve(body.sampler_name or body.sampler_index or "Euler", body.scheduler)
        sampler = sampler_for_eta(sampler, getattr(body, "eta", None))
        overrides = body.override_settings or {}
        checkpoint = self._job_checkpoint(overrides.get("sd_model_checkpoint"), owner)
        # The clip skip setting applies when the job sets none (the runner's validation: backend.job_defaults).
        return Txt2ImgRequest(
            prompt=body.prompt, negative_prompt=body.negative_prompt, sampler=sampler, scheduler=scheduler,
            steps=body.steps, cfg_scale=body.cfg_scale, distilled_cfg_scale=body.distilled_cfg_scale,
            width=body.width, height=body.height, seed=body.seed, subseed=body.subseed,
            subseed_strength=body.subseed_strength, seed_resize_from_w=body.seed_resize_from_w,
            seed_resize_from_h=body.seed_resize_from_h, batch_count=body.n_iter, batch_size=body.batch_size,
            checkpoint=checkpoint, clip_skip=overrides.get("CLIP_stop_at_last_layers"), save_images=body.save_images,
            refiner_checkpoint=body.refiner_checkpoint, refiner_switch_at=body.refiner_switch_at,
            disable_extra_networks=getattr(body, "disable_extra_networks", None) or False, styles=body.styles,
            tiling=body.tiling, eta_noise_seed_delta=overrides.get("eta_noise_seed_delta"),
            restore_faces=body.restore_faces,  # None: the face_restoration option
            vae=overrides.get("sd_vae"),
            forge_additional_modules=overrides.get("forge_additional_modules") or (),
            **hires_fields(body))

    def _job_checkpoint(self, override, owner: str | None = None) -> str:
        """The job's checkpoint, fixed now: a later change of the default does not move it. Without an
        override: the user's own pick (modules/preferences.py), else the server's default. An override is
        for this job only: it never becomes a default."""
        field = "override_settings.sd_model_checkpoint"
        if override is not None:
            if not isinstance(override, str) or not override.strip():
                raise InvalidRequest(field, "must be a checkpoint title or name (see GET /sdapi/v1/sd-models)")
            try:
                return self.backend.find_checkpoint_title(override)
            except ModelNotFound as e:
                raise ApiError(404, field, str(e)) from None
            except BadModelFile as e:
                raise ApiError(422, field, str(e)) from None
        title = self.backend.default_checkpoint_title(owners.user_name(owner))
        if title is None:
            raise ApiError(404, None, f"no checkpoint found: put Stable Diffusion .safetensors files or diffusers "
                                      f"folders into {shown(self.backend.checkpoint_folder)}, then POST "
                                      "refresh-checkpoints")
        return title

    def _txt2img_answer(self, body: models.Txt2ImgApiRequest, request: Txt2ImgRequest, job: Job) -> dict:
        with api_field_names():  # validated by the runner, before the job waits for the device
            result = self.backend.txt2img(request, job, script_call(body))
        images = [encode_png(image, text) for image, text in zip(result.images, result.infotexts)]
        info = {**result.info(), "task_id": job.id, "task_state": job.state}
        return {"images": images if body.send_images else [], "parameters": body.model_dump(),
                "info": json.dumps(info, ensure_ascii=False), "warnings": [scrub(w) for w in result.save_errors]}

    def _new_job(self, kind: str, task_id: str | None, owner: str) -> Job:
        try:  # ids are per owner: another owner's id is free to use, and never confirmed to exist
            return self.backend.new_job(kind, owner, job_id=task_id, queue_user=owners.queue_user(owner))
        except TaskIdInUse:
            raise ApiError(409, "task_id", f"{task_id!r} is already in use: pick a new id for each task") from None

    # tasks -------------------------------------------------------------------------------------

    def _find_task(self, task_id: str, owner: str, must_exist: bool = True) -> Job | None:
        job = self.backend.jobs.get(task_id, owner)  # another owner's task is unknown: not even confirmed
        if job is None and must_exist:
            raise ApiError(404, "task_id", f"no task {task_id!r}")
        return job

    def _current_job(self, owner: str) -> Job | None:
        jobs = self.backend.jobs.active(owner)
        running = [j for j in jobs if j.state == "running"]
        return (running or jobs or [None])[0]

    def _targets(self, task_id: str | None, body: models.TaskRef | None, owner: str, running: bool) -> list[Job]:
        task_id = task_id or (body.task_id if body else None)
        if task_id:
            job = self._find_task(task_id, owner)
            jobs = [job] if job.active else []
        else:
            jobs = self.backend.jobs.active(owner)
        return [j for j in jobs if j.state == "running"] if running else jobs

    # options -----------------------------------------------------------------------------------

    def _options(self, user: str | None = None) -> dict:
        options = self.settings.as_dict(user)
        title = self.backend.default_checkpoint_title(user)
        options["sd_model_checkpoint"] = title
        sha256 = None
        if title:
            try:
                sha256 = self.backend.registry.find(title).sha256
            except (ModelNotFound, BadModelFile):
                pass
        options["sd_checkpoint_hash"] = sha256
        return options

    def _vae_files(self) -> list[Path]:
        # The scan the Latent Explorer lists them with.
        return sorted((f.path for f in VaeFiles(self.backend.vae_folders).scan()), key=lambda p: p.name.lower())


@asynccontextmanager
async def interrupt_on_disconnect(request: Request, job: Job):
    """A client that goes away (closed connection, timeout) cancels its job: the job leaves the queue or
    stops inside its current step, decoding nothing more, and the device goes to the next job."""
    async def watch():
        while not await request.is_disconnected():
            await anyio.sleep(DISCONNECT_POLL_SECONDS)
        if job.active:
            log.info("client gone: cancelling task %s", job.id)
            job.cancel()

    failed: Exception | None = None
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(watch)
        try:
            yield
        except Exception as e:  # noqa: BLE001 - raised below, outside the task group, which would wrap it
            failed = e          # in an ExceptionGroup: a UserError from the job must stay a 4xx answer
        finally:
            tasks.cancel_scope.cancel()
    if failed is not None:
        raise failed


def script_call(body: models.Txt2ImgApiRequest) -> ScriptCall:
    return ScriptCall(body.script_name, list(body.script_args or []), dict(body.alwayson_scripts or {}))


def script_infos(extensions) -> list[dict]:
    """A1111's /script-info: each script's controls, read from its UI (built once, without showing it)."""
    infos = []
    for script in extensions.scripts:
        if not script.extension.enabled:
            continue
        try:
            controls = script.ui_controls()
        except Exception as e:  # noqa: BLE001 - a script whose ui() raises is listed without its controls
            script.extension.add_error(f"{script.title()}: ui", e)
            controls = []
        infos.append({"name": script.name, "title": script.title(), "is_alwayson": script.always_on,
                      "is_img2img": script.tab == "img2img", "tab": script.tab, "extension": script.extension.name, "args": controls})
    return infos


def _progress(job: Job | None, task_id: str | None) -> dict:
    if job is None:
        state = {"skipped": False, "interrupted": False, "stopping_generation": False, "job": "", "job_count": 0,
                 "job_timestamp": "0", "job_no": 0, "sampling_step": 0, "sampling_steps": 0}
        return {"progress": 0.0, "eta_relative": 0.0, "state": state, "current_image": None, "textinfo": None,
                "task_id": task_id, "task_state": "unknown" if task_id else None}
    stamp = datetime.datetime.fromtimestamp(job.started_at or job.created_at).strftime("%Y%m%d%H%M%S")
    state = {"skipped": job.skip_requested, "interrupted": job.interrupt_requested, "stopping_generation": False,
             "job": job.kind, "job_count": job.batch_count if job.active else 0, "job_timestamp": stamp,
             "job_no": job.batch_index, "sampling_step": job.step, "sampling_steps": job.steps}
    answer = {"progress": job.progress, "eta_relative": job.eta_seconds or 0.0, "state": state, "current_image": None,
              "textinfo": _textinfo(job), "task_id": task_id, "task_state": job.state}
    if job.worker:  # --workers ray: which generation worker ran it, and whether its model was loaded there already
        answer["worker"] = {"replica": job.worker, "model_was_loaded": job.worker_hot}
        if job.worker_loras_hot is not None:  # a job with LoRAs: were they attached on that worker already
            answer["worker"]["loras_were_attached"] = job.worker_loras_hot
    return answer


def _textinfo(job: Job) -> str:
    if job.state == "queued":
        return "Waiting for the device"
    if job.state == "running":
        text = f"Step {job.step}/{job.steps}"
        text += f", batch {job.batch_index + 1}/{job.batch_count}" if job.batch_count > 1 else ""
        text += f", {job.speed_text}" if job.speed_text else ""
        return text + (f". {job.note}" if job.note and job.eta_seconds is None else "")  # a long job says so
    if job.state == "failed":
        return f"Failed: {scrub(job.error or '')}"
    return job.state.capitalize()


def redacted_flags(args: argparse.Namespace) -> dict:
    flags = {}
    for name, value in sorted(vars(args).items()):
        if any(word in name.lower() for word in SECRET_WORDS) and value not in (None, False, ""):
            value = REDACTED
        else:
            value = _public_value(value)
        flags[name] = value
    return flags


def _public_value(value):
    """A flag's value as a client may see it: paths relative to the app's folders (see public_paths)."""
    if isinstance(value, (list, tuple)):
        return [_public_value(v) for v in value]
    if isinstance(value, Path):
        return shown(value)
    if isinstance(value, (int, float, bool, type(None))):
        return value
    return scrub(str(value))


# Mounting -------------------------------------------------------------------------------------

def add_docs(app: FastAPI, api: Api) -> None:
    """/docs and /openapi.json for the API routes, behind the same login as the API."""
    app.router.routes[:] = [route for route in app.router.routes if getattr(route, "path", None) not in DOCS_PATHS]
    app.openapi_url = app.docs_url = app.redoc_url = None
    schema: dict = {}

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(api.current_user)])
    def openapi_json():
        if not schema:
            schema.update(get_openapi(title=f"{APP_NAME} API", version=VERSION,
                                      routes=[route for router in api.routers for route in router.routes],
                                      description="AUTOMATIC1111-compatible `/sdapi/v1`, with per-task progress; "
                                                  "`/zoo/v1` for the Latent Explorer."))
        return schema

    @app.get("/docs", include_in_schema=False, dependencies=[Depends(api.current_user)])
    def swagger_ui():
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{APP_NAME} API")


def create_api(backend, args: argparse.Namespace, settings_file: Path | None = None) -> Api:
    """The API over the backend's settings (read at start-up by webui.py); an API app made for another
    settings file (tests) reads that one instead, with --ckpt still the default for this run."""
    if settings_file is not None and Path(settings_file) != backend.settings.path:
        backend.use_settings(Settings(Path(settings_file)))
        if getattr(args, "ckpt", None):
            try:
                backend.use_ckpt_flag(args.ckpt)
            except (ModelNotFound, BadModelFile) as e:
                log.warning("--ckpt %r cannot be used (%s)", args.ckpt, e)
    return Api(backend, args, backend.settings)


def mount_api(app: FastAPI, backend, args: argparse.Namespace, settings_file: Path | None = None) -> Api:
    """--api: /sdapi/v1, /docs and /openapi.json on the app Gradio serves."""
    api = create_api(backend, args, settings_file)
    for router in api.routers:
        app.include_router(router)
    add_docs(app, api)
    print(f"API docs: {public_url(args)}/docs", flush=True)  # after this line the API answers
    return api


def public_url(args: argparse.Namespace) -> str:
    from modules import cmd_args

    host = cmd_args.server_name(args)
    host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return f"{'https' if getattr(args, 'tls_certfile', None) else 'http'}://{host}:{cmd_args.server_port(args)}"
