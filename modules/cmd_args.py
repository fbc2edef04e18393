"""Command-line flags, named as in AUTOMATIC1111's webui so users' muscle memory works."""
from __future__ import annotations

import argparse
from pathlib import Path

from modules import paths


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="webui.py",
        description="Generative Zoo WebUI: Stable Diffusion txt2img, VAE latent exploration and GAN sampling.",
        allow_abbrev=False,  # "--list" must not silently mean "--listen"
    )
    net = parser.add_argument_group("network")
    net.add_argument("--listen", action="store_true", help="serve on 0.0.0.0 so other machines can connect")
    net.add_argument("--port", type=int, default=None, help="port to serve on (default 7860; 7861 with --nowebui)")
    net.add_argument("--server-name", default=None, help="address to bind (overrides --listen)")
    net.add_argument("--share", action="store_true", help="create a public gradio.live link")
    net.add_argument("--gradio-auth", default=None, metavar="USER:PASS[,USER2:PASS2]", help="require a login for the UI")
    net.add_argument("--gradio-auth-path", default=None, metavar="FILE",
                     help="file of user:pass entries (comma or newline separated) for the UI login")
    net.add_argument("--api", action="store_true", help="serve the /sdapi/v1 REST API next to the UI")
    net.add_argument("--api-auth", default=None, metavar="USER:PASS[,USER2:PASS2]", help="HTTP Basic auth for the API")
    net.add_argument("--nowebui", action="store_true", help="serve the API only, without the UI")
    net.add_argument("--tls-keyfile", default=None, help="TLS private key file, to serve over https")
    net.add_argument("--tls-certfile", default=None, help="TLS certificate file, to serve over https")
    net.add_argument("--enable-insecure-extension-access", action="store_true",
                     help="allow installing extensions even when listening on the network or sharing")
    net.add_argument("--offline", action="store_true", help="never contact the Hugging Face hub or any other server")
    net.add_argument("--max-upload-mb", type=float, default=50, metavar="MB",
                     help="largest upload (a file, or an API request body) in MB; larger ones get HTTP 413 "
                          "(default 50)")
    net.add_argument("--queue-limit", type=int, default=64, metavar="N",
                     help="most jobs that may wait for the device; one more gets a 'busy' answer, HTTP 503 "
                          "from the API (default 64)")
    net.add_argument("--allowed-hosts", default=None, metavar="HOST[,HOST2]",
                     help="more host names the server answers under, besides loopback names and the address it "
                          "is bound to (and the share link): the name a reverse proxy or tunnel is reached by, "
                          "e.g. gpu.example.org or *.example.org; requests for any other Host get HTTP 400")
    net.add_argument("--forwarded-allow-ips", default=None, metavar="IP[,IP2]",
                     help="addresses (or networks, e.g. 10.0.0.0/8) of reverse proxies whose X-Forwarded-For "
                          "and X-Forwarded-Proto are believed; without it, no such header is (an SSH tunnel or a "
                          "local proxy connects from 127.0.0.1, and anyone could then choose their address)")
    net.add_argument("--admin-users", default=None, metavar="USER[,USER2]",
                     help="logged-in users who may install, enable and disable extensions and change the "
                          "server-wide options (POST /sdapi/v1/options); without logins, whoever uses the app on "
                          "loopback may")
    net.add_argument("--queue-per-user", type=int, default=4, metavar="N",
                     help="most jobs one user (login name, or client address without logins) may have waiting for "
                          "the device; one more is refused, HTTP 429 from the API. Users take turns on the device "
                          "(default 4)")

    dev = parser.add_argument_group("device")
    dev.add_argument("--device", choices=["auto", "cuda", "mps", "cpu"], default="auto", help="where models run")
    dev.add_argument("--device-id", type=int, default=None, help="CUDA device index")
    dev.add_argument("--precision", choices=["auto", "fp32", "fp16", "bf16"], default="auto",
                     help="weights dtype on the device (auto: fp16 on CUDA/MPS; on a CPU bf16 where it has native "
                          "bf16 and a quick check at the first start measures it faster, else fp32)")
    dev.add_argument("--no-half-vae", action="store_true", help="keep the VAE in fp32 (avoids black images)")
    dev.add_argument("--compile", action="store_true",
                     help="run each checkpoint's UNet/transformer through torch.compile (inductor; a C++ compiler on "
                          "a CPU): faster steps after a warm-up of minutes at the first job of each size, logged and "
                          "shown in the Models tab; Interrupt then stops between steps only")
    dev.add_argument("--medvram", action="store_true", help="move whole components to the device only while used")
    dev.add_argument("--lowvram", action="store_true", help="sequential offload: least memory, slowest")
    dev.add_argument("--ram-budget", type=float, default=None, metavar="GB",
                     help="RAM for cached checkpoints (default: total RAM minus 4 GB)")
    dev.add_argument("--vram-budget", type=float, default=None, metavar="GB",
                     help="GPU memory for resident checkpoints (default: total minus 1.5 GB)")
    dev.add_argument("--max-pixels", type=int, default=None, metavar="N",
                     help="largest width × height of one image a job may ask for (default 1048576 = 1024² on a "
                          "CPU, 4194304 = 2048² on a GPU; at most 4194304)")
    dev.add_argument("--max-batch", type=int, default=None, metavar="N",
                     help="largest batch size (images made at once) a job may ask for (default 4 on a CPU, "
                          "8 on a GPU; at most 8)")
    dev.add_argument("--max-steps", type=int, default=None, metavar="N",
                     help="most sampling steps a job may ask for (default 150; at most 150)")
    dev.add_argument("--max-job-seconds", type=float, default=3600, metavar="SECONDS",
                     help="refuse a txt2img job up front when the checkpoint's measured speed says it would take "
                          "longer than this (default 3600)")

    mod = parser.add_argument_group("models and files")
    mod.add_argument("--ckpt", default=None, help="checkpoint to load at start (file, folder or title)")
    mod.add_argument("--ckpt-dir", default=None, help="extra folder to scan for Stable Diffusion checkpoints")
    mod.add_argument("--vae-dir", default=None, help="extra folder to scan for VAE files")
    mod.add_argument("--lora-dir", default=None, help="extra folder to scan for LoRA files (after models/Lora)")
    mod.add_argument("--embeddings-dir", default=None,
                     help="extra folder of textual-inversion embeddings (after models/embeddings)")
    mod.add_argument("--models-dir", default=None, help="base folder of models (default: ./models)")
    mod.add_argument("--outdir", default=None, help="where generated images go (default: ./outputs)")
    mod.add_argument("--styles-file", default=None, metavar="FILE",
                     help="prompt styles in A1111's styles.csv format (default: styles.csv in the app folder)")
    mod.add_argument("--skip-load-model-at-start", action="store_true", help="load a checkpoint on first use only")

    work = parser.add_argument_group("workers (many GPUs)")
    work.add_argument("--workers", choices=("local", "ray"), default="local",
                      help="where jobs run: local (this process, one device; the default) or ray (a Ray Serve "
                           "deployment of generation workers, one device each, checkpoints kept where they are hot)")
    work.add_argument("--ray-address", default=None, metavar="ADDRESS",
                      help="the Ray cluster to use with --workers ray (ray://host:10001, or auto); default: start "
                           "a local Ray instance")
    work.add_argument("--require-workers", action="store_true",
                      help="with --workers ray: exit when Ray cannot be reached, instead of running jobs locally")
    work.add_argument("--workers-config", default=None, metavar="FILE",
                      help="YAML file of worker settings (min_replicas, max_replicas, target_ongoing_requests, "
                           "models_per_replica, cpus_per_replica, gpus_per_replica); the flags below win over it")
    work.add_argument("--min-replicas", type=int, default=None, metavar="N",
                      help="fewest generation workers (default 1)")
    work.add_argument("--max-replicas", type=int, default=None, metavar="N",
                      help="most generation workers, autoscaled between the two (default: --min-replicas)")
    work.add_argument("--models-per-replica", type=int, default=None, metavar="N",
                      help="checkpoints one worker keeps loaded, least recently used dropped (default 2)")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse flags; an unknown flag exits with an error (argparse's default), as it should."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.tls_keyfile and not args.tls_certfile or args.tls_certfile and not args.tls_keyfile:
        parser.error("--tls-keyfile and --tls-certfile must be given together")
    if args.medvram and args.lowvram:
        parser.error("--medvram and --lowvram cannot be combined: pick one")
    if not args.max_upload_mb > 0:
        parser.error("--max-upload-mb must be a positive number of MB")
    if args.queue_limit < 0:
        parser.error("--queue-limit must be 0 or more")
    try:
        allowed_hosts(args)
        forwarded_allow_ips(args)
    except ValueError as e:
        parser.error(str(e))
    from modules.job_limits import ABSOLUTE
    for flag, low, high in (("max_pixels", 64 * 64, ABSOLUTE.max_pixels), ("max_batch", 1, ABSOLUTE.max_batch),
                            ("max_steps", 1, ABSOLUTE.max_steps)):
        value = getattr(args, flag)
        if value is not None and not low <= value <= high:
            parser.error(f"--{flag.replace('_', '-')} must be between {low} and {high}")
    if args.workers == "local" and (args.ray_address or args.require_workers or args.workers_config):
        parser.error("--ray-address, --require-workers and --workers-config need --workers ray")
    for flag in ("min_replicas", "max_replicas", "models_per_replica"):
        value = getattr(args, flag)
        if value is not None and not 1 <= value <= 1024:
            parser.error(f"--{flag.replace('_', '-')} must be between 1 and 1024")
    if not 0 < args.max_job_seconds < float("inf"):
        parser.error("--max-job-seconds must be a positive number of seconds")
    if args.queue_per_user < 0:
        parser.error("--queue-per-user must be 0 or more")
    for flag in ("ram_budget", "vram_budget"):
        value = getattr(args, flag)
        if value is not None and not value > 0:
            parser.error(f"--{flag.replace('_', '-')} must be a positive number of GB")
    if args.admin_users is not None:
        _check_admin_users(parser, args)
    args.models_dir = Path(args.models_dir).resolve() if args.models_dir else paths.MODELS_DIR
    args.outdir = Path(args.outdir).resolve() if args.outdir else paths.OUTPUTS_DIR
    return args


def server_name(args: argparse.Namespace) -> str:
    if args.server_name:
        return args.server_name
    return "0.0.0.0" if args.listen else "127.0.0.1"


def server_port(args: argparse.Namespace) -> int:
    if args.port:
        return args.port
    return 7861 if args.nowebui else 7860


def max_upload_bytes(args: argparse.Namespace) -> int:
    """--max-upload-mb in bytes (50 MB when the namespace predates the flag)."""
    return int(getattr(args, "max_upload_mb", 50) * 2**20)


def allowed_hosts(args: argparse.Namespace):
    """--allowed-hosts as modules.security.hosts.HostRule's; ValueError naming the flag and the bad entry."""
    from modules.security.hosts import parse_allowed_hosts

    try:
        return parse_allowed_hosts(getattr(args, "allowed_hosts", None))
    except ValueError as e:
        raise ValueError(f"--allowed-hosts: {e}") from None


def forwarded_allow_ips(args: argparse.Namespace) -> list[str]:
    """--forwarded-allow-ips as a list for uvicorn; [] (believe no forwarded header) without it."""
    import ipaddress

    entries = [e.strip() for e in (getattr(args, "forwarded_allow_ips", None) or "").split(",") if e.strip()]
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ValueError(f"--forwarded-allow-ips: {entry!r} is not an IP address or network (e.g. 127.0.0.1 "
                             "or 10.0.0.0/8); '*' is not allowed: it would let any client choose its address") \
                from None
    return entries


def parse_credentials(text: str, source: str) -> list[tuple[str, str]]:
    """'user:pass,user2:pass2' (or one per line) -> [(user, pass), ...]. `source` names the flag or file in errors."""
    pairs = []
    for entry in text.replace("\n", ",").split(","):
        entry = entry.strip()
        if not entry:
            continue
        user, sep, password = entry.partition(":")
        if not sep or not user or not password:
            raise SystemExit(f"{source}: expected user:password entries, got an entry without ':' or with an empty part")
        pairs.append((user, password))
    return pairs


def gradio_credentials(args: argparse.Namespace) -> list[tuple[str, str]]:
    creds = []
    if args.gradio_auth:
        creds += parse_credentials(args.gradio_auth, "--gradio-auth")
    if args.gradio_auth_path:
        path = Path(args.gradio_auth_path)
        if not path.is_file():
            raise SystemExit(f"--gradio-auth-path: file not found: {path}")
        creds += parse_credentials(path.read_text(encoding="utf8"), f"--gradio-auth-path {path}")
    return creds


def _check_admin_users(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    names = admin_users(args)
    if not names:
        parser.error("--admin-users: give one or more user names, separated by commas")
    logins = {user for user, _ in gradio_credentials(args)}
    if args.api_auth:
        logins |= {user for user, _ in parse_credentials(args.api_auth, "--api-auth")}
    unknown = sorted(names - logins)
    if unknown:
        parser.error(f"--admin-users: {', '.join(unknown)} cannot log in: name users of --gradio-auth, "
                     "--gradio-auth-path or --api-auth")


def admin_users(args: argparse.Namespace) -> frozenset[str]:
    """--admin-users as a set of user names (empty when not given)."""
    text = getattr(args, "admin_users", None) or ""
    return frozenset(name.strip() for name in text.split(",") if name.strip())


def is_loopback(host: str) -> bool:
    return host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")
