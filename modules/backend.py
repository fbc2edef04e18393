"""The backend: registry, pipeline manager, jobs and output folder, behind one object.

The UI and the API are thin adapters over these methods, so a feature works in both or in neither."""
from __future__ import annotations

import dataclasses
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from modules import owners
from modules.capabilities.base import Capability
from modules.capabilities.runner import Runner
from modules.capabilities.txt2img import TXT2IMG, Txt2ImgRequest, Txt2ImgResult
from modules.devices import DeviceConfig
from modules.errors import InvalidRequest, ModelNotFound, UserError
from modules.extensions import Extensions, ScriptCall
from modules.job_estimate import DEFAULT_MAX_JOB_SECONDS, StepTimes
from modules.job_limits import JobLimits, default_limits
from modules.jobs import Job, JobRegistry
from modules.models.hashing import HashCache
from modules.models.manager import PipelineManager
from modules.models.registry import Registry
from modules.models.zoo_registry import ZooRegistry
from modules.networks.embeddings import Embeddings
from modules.networks.files import EMBEDDING_SUFFIXES, LORA_SUFFIXES, NetworkFolder
from modules.networks.lora_metadata import LoraMetadata
from modules.settings import Settings
from modules.styles import StyleFile, styled_request_values

log = logging.getLogger(__name__)


def _name_folders(config: "BackendConfig") -> None:
    """Answers and messages name files relative to these folders, never by absolute path."""
    from modules.public_paths import add_folder

    add_folder(config.cache_dir, "cache")
    for folder in config.ckpt_dirs:
        add_folder(folder, "ckpt-dir")
    for folder in config.vae_dirs:
        add_folder(folder, "vae-dir")
    for folder in config.lora_dirs:
        add_folder(folder, "lora-dir")
    for folder in config.embedding_dirs:
        add_folder(folder, "embeddings-dir")
    add_folder(config.models_dir, "models")
    add_folder(config.outdir, "outputs")


@dataclass
class BackendConfig:
    models_dir: Path
    outdir: Path
    cache_dir: Path
    devices: DeviceConfig
    ckpt_dirs: tuple[Path, ...] = ()
    vae_dirs: tuple[Path, ...] = ()  # --vae-dir: looked at after models/VAE
    lora_dirs: tuple[Path, ...] = ()  # --lora-dir: looked at after models/Lora
    embedding_dirs: tuple[Path, ...] = ()  # --embeddings-dir: looked at after models/embeddings
    offline: bool = False
    ram_budget: int | None = None  # bytes; None: a default from total RAM
    vram_budget: int | None = None
    queue_limit: int | None = 64  # jobs that may wait for the device; one more is told "busy" (QueueFull)
    limits: JobLimits | None = None  # --max-pixels/--max-batch/--max-steps; None: the device's defaults
    queue_per_user: int | None = 4  # of which one user's (job.owner); one more is told so (UserQueueFull)
    settings_file: Path | None = None  # config.json (webui.py: always); None: settings in memory only
    styles_file: Path | None = None  # A1111's styles.csv (webui.py: --styles-file); None: cache_dir/styles.csv
    cache_policy: object | None = None  # which cached models make room (models/cache_policy.py); None: LRU
    max_job_seconds: float | None = DEFAULT_MAX_JOB_SECONDS  # --max-job-seconds; None: no limit


class Backend:
    def __init__(self, config: BackendConfig):
        self.config = config
        _name_folders(config)
        # models/unet: where ComfyUI and Forge users keep transformer-only files (GGUF, fp8)
        checkpoint_dirs = [config.models_dir / "Stable-diffusion", config.models_dir / "unet", *config.ckpt_dirs]
        self.registry = Registry(checkpoint_dirs, HashCache(config.cache_dir / "hashes.json"))
        self.zoo_registry = ZooRegistry(config.models_dir, self.registry.hash_cache)
        self.settings = Settings(config.settings_file)  # read now, whatever the flags: UI, API and jobs use it
        self.manager = PipelineManager(self.registry, config.devices, offline=config.offline,
                                       ram_budget=config.ram_budget, vram_budget=config.vram_budget,
                                       queue_limit=config.queue_limit, queue_per_user=config.queue_per_user,
                                       zoo_registry=self.zoo_registry, vae_folders=self.vae_folders,
                                       settings=self.settings, policy=config.cache_policy,
                                       upscaler_folders=self.upscaler_folders,
                                       component_folders=[config.models_dir / "text_encoder", *self.vae_folders],
                                       face_restorer_folders=self.face_restorer_folders,
                                       preview_folder=config.models_dir / "VAE-approx",
                                       lpips_folders=[config.models_dir / "LPIPS"])
        self.jobs = JobRegistry()
        self._convert_lock = threading.Lock()  # one StyleGAN pickle conversion at a time (memory)
        self.registry.scan()
        self.zoo_registry.scan()
        self.extensions = Extensions()  # none until webui.py loads extensions/ (Extensions.attach)
        self.runner = Runner(self)  # every capability's jobs: validate, scripts, model, run, errors
        self.workers = None  # --workers ray: a WorkerPool (modules/workers/pool.py) runs the jobs' model part
        self.step_times = StepTimes()  # how long a job will take, said before it starts
        # Extra networks a prompt names: LoRAs (<lora:name:w>) and textual-inversion embeddings (their name).
        self.styles = StyleFile(config.styles_file or config.cache_dir / "styles.csv")  # prompt styles
        self.lora_files = NetworkFolder([config.models_dir / "Lora", *config.lora_dirs], LORA_SUFFIXES)
        self.lora_metadata = LoraMetadata()  # each LoRA file's metadata and alias, read once per file version
        self.embedding_files = NetworkFolder([config.models_dir / "embeddings", *config.embedding_dirs],
                                             EMBEDDING_SUFFIXES)
        self.embeddings = Embeddings(self.embedding_files, hashes=self.registry.hash_cache)

    @property
    def device_line(self):
        """The fair line jobs wait in for the device (a FairLock): the manager's, or with --workers ray the front
        end's, one place per worker."""
        return self.workers.line if self.workers is not None else self.manager.device_lock

    def run(self, capability: Capability, request, job: Job | None = None, scripts: ScriptCall | None = None):
        """One job of `capability` (modules/capabilities), through the runner; see Runner.run."""
        return self.runner.run(capability, request, job, scripts)

    @property
    def limits(self) -> JobLimits:
        """How much work one job may ask for (--max-pixels, --max-batch, --max-steps)."""
        return self.config.limits or default_limits(self.config.devices.device.type)

    def check_limits(self, request: Txt2ImgRequest) -> None:
        """A txt2img request against --max-pixels/--max-batch/--max-steps and the text encoder's depth: what
        the runner checks before the job waits (scripts check the requests they make up front with it)."""
        self.runner.validate(TXT2IMG, request)

    @property
    def checkpoint_folder(self) -> Path:
        return self.config.models_dir / "Stable-diffusion"

    def use_settings(self, settings: Settings) -> None:
        """Another settings file (an API app built for its own config.json, as tests do)."""
        self.settings = self.manager.settings = settings

    def use_ckpt_flag(self, ckpt: str) -> None:
        """--ckpt: a file or folder path (added to the list even outside the models folder), or a title.
        The default checkpoint for this run, over the saved one, until someone saves another."""
        path = Path(ckpt).expanduser()
        if path.exists():
            if path.resolve() not in self.registry.extra_paths:
                self.registry.extra_paths.append(path.resolve())
            self.registry.scan()
            ckpt = str(path.resolve())
        self.settings.override("sd_model_checkpoint", self.registry.find(ckpt).title)

    def refresh_checkpoints(self) -> list[str]:
        self.registry.scan()
        return self.checkpoint_titles()

    def native_size(self, checkpoint: str | None) -> int:
        """The side, in pixels, the checkpoint was trained at (512 when it cannot be told)."""
        try:
            return self.manager.resolve(checkpoint).native_size
        except Exception:  # noqa: BLE001 - no or unknown checkpoint: A1111's default
            return 512

    def checkpoint_defaults(self, checkpoint: str | None) -> dict:
        """What the UI starts a job on this checkpoint from: its size, the samplers its family offers (flow
        matching for SD3/FLUX), steps, CFG scale (1 for FLUX) and whether it takes a distilled CFG scale."""
        from modules.generation.samplers import sampler_names

        try:
            info = self.manager.resolve(checkpoint)
            family, side = info.architecture.spec, info.native_size
        except Exception:  # noqa: BLE001 - no or unknown checkpoint: A1111's defaults
            return {"size": 512, "samplers": sampler_names(), "steps": 20, "cfg_scale": 7.0, "distilled": False}
        return {"size": side, "samplers": sampler_names(family), "steps": family.default_steps,
                "cfg_scale": family.default_cfg_scale, "distilled": family.distilled_guidance}

    def component_file_names(self) -> list[str]:
        """The VAE and text encoder files a transformer-only checkpoint may be completed with (Forge's
        "VAE / Text Encoder"): models/VAE (--vae-dir) and models/text_encoder."""
        return self.manager.component_files.names()

    def checkpoint_titles(self) -> list[str]:
        return [c.title for c in self.registry.usable()]

    def default_checkpoint_title(self, user: str | None = None) -> str | None:
        """The checkpoint a job that names none gets: the user's own pick (with logins), else the setting,
        else the first usable one."""
        try:
            return self.manager.resolve(self.settings.for_user("sd_model_checkpoint", user)).title
        except UserError:
            try:
                return self.manager.resolve(None).title
            except UserError:  # no checkpoint at all is a normal state on a fresh machine
                return None

    def embeddings_for_default(self, user: str | None = None):
        """The textual-inversion embeddings as the default checkpoint (the user's own, with logins) sees them:
        which fit it and which are skipped (modules/networks/embeddings.py)."""
        title = self.default_checkpoint_title(user)
        return self.embeddings.for_checkpoint(self.registry.find(title) if title else None)

    def job_defaults(self, request: Txt2ImgRequest, owner: str | None = None) -> Txt2ImgRequest:
        """A request with what it leaves open taken from the settings, for UI and API jobs alike: the checkpoint
        (fixed now, so a later change of the default does not move a queued job), the clip skip, saving; and the
        prompt styles it names applied to its prompts (modules/styles.py), once: an unknown one is refused."""
        changes: dict = {}
        if not request.checkpoint:
            changes["checkpoint"] = self.default_checkpoint_title(owners.user_name(owner))
        if request.clip_skip is None:
            # The setting may have been saved for a deeper text encoder than this checkpoint's, or for other
            # families than one where clip skip changes nothing (FLUX, Z-Image): it is a default, so it gives way
            # there, and the infotext does not claim it (a value the job itself sends is refused instead).
            clip_skip = self.settings.get("CLIP_stop_at_last_layers")
            checkpoint = changes.get("checkpoint", request.checkpoint)
            limit = self.clip_skip_limit(checkpoint)
            if self.clip_skip_refusal(checkpoint) is not None:
                clip_skip = 1
            changes["clip_skip"] = min(clip_skip, limit) if limit is not None and isinstance(clip_skip, int) else clip_skip
        if request.save_images is None:
            changes["save_images"] = self.settings.get("samples_save")
        if getattr(request, "styles", None):  # once: the names move to applied_styles
            changes.update(styled_request_values(request, self.styles.resolve(request.styles)))
        if request.vae is None:
            changes["vae"] = self.settings.for_user("sd_vae", owners.user_name(owner))
        if request.restore_faces is None:  # A1111: a job that does not say follows Settings > Face restoration
            changes["restore_faces"] = self.settings.for_user("face_restoration", owners.user_name(owner))
        if request.eta_noise_seed_delta is None:
            changes["eta_noise_seed_delta"] = self.settings.for_user("eta_noise_seed_delta", owners.user_name(owner))
        return dataclasses.replace(request, **changes) if changes else request

    def with_loras(self, request: Txt2ImgRequest) -> Txt2ImgRequest:
        """The request with the LoRA files its prompt's tags name (and its hires prompt's); an unknown name is
        refused, naming the field and the name."""
        from modules.networks.loras import resolve_loras

        if request.disable_extra_networks:
            return dataclasses.replace(request, loras=(), hr_loras=())
        loras = resolve_loras(request.prompt, self.lora_files, "prompt", self.lora_metadata)
        hr_loras = (resolve_loras(request.hr_prompt, self.lora_files, "hr_prompt", self.lora_metadata)
                    if request.enable_hr and request.hr_prompt else loras)
        return dataclasses.replace(request, loras=loras, hr_loras=hr_loras)

    @property
    def vae_folders(self) -> list[Path]:
        """Where stand-alone VAE files are found: models/VAE, then --vae-dir."""
        return [self.config.models_dir / "VAE", *self.config.vae_dirs]

    @property
    def upscaler_folders(self) -> list[Path]:
        """Where upscaler models are found: A1111's models/ESRGAN, models/RealESRGAN, models/SwinIR."""
        from modules.models.upscaler_files import FOLDERS

        return [self.config.models_dir / folder for folder in FOLDERS]

    @property
    def face_restorer_folders(self) -> list[Path]:
        """Where face restorer models are found: A1111's models/GFPGAN."""
        from modules.models.face_restorer_files import FOLDER

        return [self.config.models_dir / FOLDER]

    def with_face_restorer(self, request: Txt2ImgRequest, owner: str | None = None) -> Txt2ImgRequest:
        """With restore_faces: the restorer the job uses (the face_restoration_model option, else the first
        one there), or a refusal naming restore_faces that says where a model file goes."""
        from modules.user_values import shown

        if not request.restore_faces:
            return dataclasses.replace(request, face_restorer=None)
        available = self.manager.face_restorer_files.available()
        wanted = self.settings.for_user("face_restoration_model", owners.user_name(owner))
        if not available:
            raise InvalidRequest("restore_faces", "no face restoration model: put a GFPGAN model file "
                                                  f"(GFPGANv1.4.pth) into {shown(self.face_restorer_folders[0])}")
        if wanted and wanted not in available:
            raise InvalidRequest("restore_faces", f"the face_restoration_model option names {wanted!r}, which is "
                                                  f"not available here; available: {', '.join(available)}")
        return dataclasses.replace(request, face_restorer=wanted or available[0])

    def with_extras_face_restorer(self, request):
        """Extras' gfpgan_visibility: refused, naming it, when models/GFPGAN holds no file."""
        from modules.user_values import shown

        if not self.manager.face_restorer_files.available():
            raise InvalidRequest("gfpgan_visibility", "no face restoration model: put a GFPGAN model file "
                                                      f"(GFPGANv1.4.pth) into {shown(self.face_restorer_folders[0])}")
        return request

    def cached_models(self) -> list[dict]:
        """What the pipeline manager holds (checkpoints, zoo models, VAE files, upscalers, face restorers,
        preview decoders, LPIPS, data), most recently used first."""
        return self.manager.cached_models()

    def cache_totals(self) -> dict:
        return self.manager.cache_totals()

    def find_checkpoint_title(self, name: str) -> str:
        """The title of the checkpoint a user names; rescans the folders once if it is not known yet."""
        try:
            return self.registry.find(name).title
        except ModelNotFound:
            self.registry.scan()
            return self.registry.find(name).title

    def clip_skip_limit(self, checkpoint: str | None) -> int | None:
        """The highest clip skip the checkpoint's text encoders allow (None: no checkpoint to tell)."""
        try:
            return self.manager.resolve(checkpoint).text_encoder_layers
        except UserError:
            return None

    def clip_skip_refusal(self, checkpoint: str | None) -> str | None:
        """Why clip skip changes nothing on the checkpoint's family (FLUX reads CLIP-L's pooled output only, Z-Image
        has no CLIP), in the family's words; None where it applies, or with no checkpoint to tell."""
        try:
            architecture = self.manager.resolve(checkpoint).architecture
        except UserError:
            return None
        return architecture.spec.refusals.get("clip skip") if architecture is not None else None

    def check_clip_skip(self, clip_skip: int, checkpoint: str | None, field: str = "clip_skip",
                        default: bool = False) -> None:
        """A job's clip skip (or, `default`, the saved setting's) against the checkpoint's text encoders. A job
        that asks for clip skip on a family where it changes nothing is refused; the setting is not (it gives way
        there: job_defaults)."""
        refusal = self.clip_skip_refusal(checkpoint)
        if refusal is not None:
            if clip_skip > 1 and not default:
                raise InvalidRequest(field, f"is {clip_skip}, but {refusal}; use 1")
            return
        limit = self.clip_skip_limit(checkpoint)
        if limit is not None and clip_skip > limit:
            raise InvalidRequest(field, f"is {clip_skip}, but this checkpoint's text encoder has only {limit} layers: "
                                        f"use 1 to {limit}")

    def memory_info(self) -> dict:
        """RAM and CUDA memory in bytes, in the shape of A1111's /sdapi/v1/memory."""
        import os

        import psutil
        import torch

        vm = psutil.virtual_memory()
        ram = {"free": vm.available, "used": vm.total - vm.available, "total": vm.total,
               "process": psutil.Process(os.getpid()).memory_info().rss}
        device = self.config.devices.device
        if device.type != "cuda" or not torch.cuda.is_available():
            return {"ram": ram, "cuda": {"error": "unavailable"}}
        free, total = torch.cuda.mem_get_info(device)
        stats = torch.cuda.memory_stats(device)

        def current_peak(name: str) -> dict:
            return {"current": stats.get(f"{name}.all.current", 0), "peak": stats.get(f"{name}.all.peak", 0)}

        cuda = {"system": {"free": free, "used": total - free, "total": total},
                "active": current_peak("active_bytes"), "allocated": current_peak("allocated_bytes"),
                "reserved": current_peak("reserved_bytes"), "inactive": current_peak("inactive_split_bytes"),
                "events": {"retries": stats.get("num_alloc_retries", 0), "oom": stats.get("num_ooms", 0)}}
        return {"ram": ram, "cuda": cuda}

    def outdir_for(self, job: Job) -> Path:
        """Where a job's files go: outputs/<user>/ for a logged-in user's job, else outputs/ (modules/owners.py)."""
        return owners.output_root(self.config.outdir, job.owner)

    def new_job(self, kind: str, owner: str | None = None, job_id: str | None = None,
                queue_user: str | None = None) -> Job:
        """`queue_user`: who waits in the device's line for it (modules/owners.queue_user); default: the owner."""
        return self.jobs.create(kind, owner, job_id, queue_user)

    def txt2img(self, request: Txt2ImgRequest, job: Job | None = None,
                scripts: ScriptCall | None = None) -> Txt2ImgResult:
        """One txt2img job through the runner, with the extensions' scripts (a selected script's `run`,
        the always-on hooks). Raises UserError for anything the user can fix; the job records the outcome."""
        return self.runner.run(TXT2IMG, request, job, scripts)

    # GAN Sampler: its jobs run through the runner (backend.run(gan, ...), modules/capabilities/gan).
    def gan_titles(self) -> list[str]:
        self.zoo_registry.scan()
        return [m.title for m in self.zoo_registry.usable("gan")]

    def convert_gan_pickle(self, title: str | None):
        """Convert a StyleGAN network pickle of models/GAN into our .safetensors beside it (never over an existing
        file); returns the new file's title. The pickle is read without running it, and is no longer needed."""
        from modules.models.stylegan_files import PICKLE_SUFFIXES, convert_pickle

        info = self.zoo_registry.find("gan", title)
        if info.path.suffix.lower() not in PICKLE_SUFFIXES:
            raise UserError(f"{info.name} is already a .safetensors file: nothing to convert")
        out = info.path.with_suffix(".safetensors")
        if out.exists():
            raise UserError(f"{out.name} already exists in models/GAN: remove or rename it first")
        with self._convert_lock:
            convert_pickle(info.path, out)
        self.zoo_registry.scan()
        return next((m.title for m in self.zoo_registry.usable("gan") if m.path == out), out.name)
