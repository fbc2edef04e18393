"""Generative Zoo WebUI: parse flags, start the backend, build the UI, launch."""
from __future__ import annotations

import logging
import os
import sys
import threading
from pathlib import Path

# No telemetry, ever; and the app must not need the internet.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DISABLE_TELEMETRY", "1")
# No code from model files: diffusers ignores trust_remote_code everywhere (the loaders never pass it anyway).
os.environ["DIFFUSERS_DISABLE_REMOTE_CODE"] = "1"


def main(argv: list[str] | None = None, block: bool = True):
    from modules import cmd_args

    args = cmd_args.parse_args(argv)
    if args.offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpcore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from modules import quiet_log
    quiet_log.install()  # before diffusers and transformers are imported: some of their noise comes at import

    from modules import devices, image_limits, paths
    image_limits.install()  # Pillow refuses decompression bombs everywhere, Gradio's own image handling too
    from modules.backend import Backend, BackendConfig
    from modules.job_limits import limits_for
    from modules.models.memory import GB
    from modules.settings import default_settings_file

    settings_file = default_settings_file()  # read at start-up whatever the flags: the UI's jobs use it too
    _remove_leftovers(args, settings_file)

    device = devices.device_config(args.device, args.device_id, args.precision, args.no_half_vae,
                                   args.medvram, args.lowvram, cache_dir=paths.CACHE_DIR, compile=args.compile)
    backend = Backend(BackendConfig(
        models_dir=args.models_dir, outdir=args.outdir, cache_dir=paths.CACHE_DIR,
        devices=device,
        ckpt_dirs=tuple(Path(p).expanduser() for p in [args.ckpt_dir] if p),
        vae_dirs=tuple(Path(p).expanduser() for p in [args.vae_dir] if p),
        lora_dirs=tuple(Path(p).expanduser() for p in [args.lora_dir] if p),
        embedding_dirs=tuple(Path(p).expanduser() for p in [args.embeddings_dir] if p),
        offline=args.offline or os.environ.get("HF_HUB_OFFLINE") == "1",
        ram_budget=int(args.ram_budget * GB) if args.ram_budget else None,
        vram_budget=int(args.vram_budget * GB) if args.vram_budget else None,
        queue_limit=args.queue_limit,
        limits=limits_for(device.device.type, args.max_pixels, args.max_batch, args.max_steps),
        queue_per_user=args.queue_per_user,
        settings_file=settings_file,
        styles_file=Path(args.styles_file).expanduser() if args.styles_file else paths.APP_ROOT / "styles.csv",
        max_job_seconds=args.max_job_seconds,
    ))
    if args.workers == "ray":  # before the default checkpoint loads: the workers hold the models then
        from modules.workers.start import start_workers
        start_workers(backend, args)
    if args.ckpt:
        from modules.errors import UserError

        try:
            backend.use_ckpt_flag(args.ckpt)
        except UserError as e:  # a wrong path or name: say so, and serve with the default instead
            print(f"--ckpt: {e}", flush=True)
    extensions = _load_extensions(backend, args)
    if not backend.registry.usable():
        print(f"No checkpoint found: put Stable Diffusion .safetensors files or diffusers folders into "
              f"{backend.checkpoint_folder} (or pass --ckpt-dir), then press the refresh button.", flush=True)
    elif not args.skip_load_model_at_start and backend.workers is None:
        threading.Thread(target=_load_default, args=(backend,), daemon=True, name="load-checkpoint").start()

    if args.nowebui:
        from modules.api.server import serve_api_only
        backend, server = serve_api_only(backend, args, block=False)
        extensions.app_started(None, server.server.config.app)
        if block:
            server.wait()
        return backend, server

    from modules.security.gradio_folder import use_private_gradio_folder
    use_private_gradio_folder(paths.CACHE_DIR)  # before the UI is built: Gradio reads it then
    from modules.server import launch_ui
    from modules.ui.app import build_ui

    demo = build_ui(backend)
    def before_serving(app):
        from modules.api.preview_routes import add_preview_route
        add_preview_route(app, backend)  # the Extra Networks cards' pictures
        if args.api:
            from modules.api.routes import mount_api
            mount_api(app, backend, args)

    result = launch_ui(demo, args, block=False, before_serving=before_serving)
    extensions.app_started(demo, result[0])
    if block:
        demo.block_thread()
    return backend, demo


def _remove_leftovers(args, settings_file: Path) -> None:
    """Half-written files an earlier run left when it was killed (see modules/leftovers.py)."""
    from modules.extensions.state import default_state_file
    from modules.leftovers import remove_leftovers

    remove_leftovers(args.outdir, args.models_dir, {Path(settings_file).parent, default_state_file().parent})


def _load_extensions(backend, args):
    """extensions/: each enabled one's scripts and callbacks; one that fails is reported and skipped."""
    from modules.extensions import Extensions
    from modules.extensions.installer import access_refusal
    from modules.security.admins import Admins

    extensions = Extensions.load_from()
    extensions.install_refusal = access_refusal(args)
    extensions.admins = Admins.from_args(args)
    extensions.attach(backend)
    return extensions


def _load_default(backend) -> None:
    try:
        backend.manager.load(None)
    except Exception as e:  # noqa: BLE001 - the app keeps serving; the user sees the error on first use
        logging.getLogger("webui").error("could not load the default checkpoint: %s", e)


if __name__ == "__main__":
    main(sys.argv[1:])
