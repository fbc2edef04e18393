"""The generation workers' settings (--workers ray): from flags, or a small YAML file the flags win over.

    min_replicas: 1              # fewest workers; each owns one pipeline manager on one device
    max_replicas: 4              # most workers: Ray Serve autoscales between the two
    target_ongoing_requests: 1   # jobs per worker before Serve adds one (autoscaling target)
    models_per_replica: 2        # checkpoints one worker keeps loaded (least recently used dropped)
    jobs_per_replica: 4          # jobs a worker accepts at once: one runs, the others wait in its line, so
                                 # a busy worker that holds their model still gets them (the front end sends
                                 # one Stable Diffusion job per worker at a time; GAN and β-VAE jobs besides)
    cpus_per_replica: 1          # Ray CPUs reserved per worker
    gpus_per_replica: 0          # 1 on a GPU machine: each worker gets its own GPU

Every key is checked; an unknown key or a wrong value is refused naming the file and the key."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from modules.errors import UserError

MAX_CONFIG_BYTES = 64 * 1024


@dataclass(frozen=True)
class WorkerConfig:
    address: str | None = None        # None: start a local Ray instance
    min_replicas: int = 1
    max_replicas: int = 1
    target_ongoing_requests: float = 1.0
    models_per_replica: int = 2
    jobs_per_replica: int = 4
    cpus_per_replica: float = 1.0
    gpus_per_replica: float = 0.0
    # A local Ray instance's size (the machine it starts on): CPUs and object store bytes; None: Ray's own.
    local_cpus: int | None = None
    object_store_bytes: int | None = 200 * 2**20


_BOUNDS = {"min_replicas": (1, 1024), "max_replicas": (1, 1024), "target_ongoing_requests": (0.1, 64),
           "models_per_replica": (1, 64), "jobs_per_replica": (1, 64), "cpus_per_replica": (0.0, 256), "gpus_per_replica": (0.0, 16)}
_INTEGERS = {"min_replicas", "max_replicas", "models_per_replica", "jobs_per_replica"}


def _checked(name: str, value, where: str):
    low, high = _BOUNDS[name]
    number_ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number_ok or (name in _INTEGERS and not float(value).is_integer()) or not low <= value <= high:
        kind = "a whole number" if name in _INTEGERS else "a number"
        raise UserError(f"{where}: {name} must be {kind} from {low} to {high}, not {value!r}")
    return int(value) if name in _INTEGERS else float(value)


def read_config_file(path: Path) -> dict:
    """The YAML file's keys, checked (safe_load only: no tags, no objects)."""
    import yaml

    where = f"--workers-config {Path(path).name}"
    try:
        if Path(path).stat().st_size > MAX_CONFIG_BYTES:
            raise UserError(f"{where}: larger than {MAX_CONFIG_BYTES // 1024} KB")
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except OSError as e:
        raise UserError(f"{where}: cannot read it ({e.strerror or e})") from None
    except yaml.YAMLError as e:
        raise UserError(f"{where}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise UserError(f"{where}: must be a mapping of settings")
    unknown = sorted(str(k) for k in data if k not in _BOUNDS)
    if unknown:
        raise UserError(f"{where}: unknown setting {unknown[0]!r}; known: {', '.join(_BOUNDS)}")
    return {name: _checked(name, value, where) for name, value in data.items()}


def worker_config(args) -> WorkerConfig:
    """The settings for --workers ray: defaults, then --workers-config, then the flags."""
    values: dict = {}
    if args.workers_config:
        values.update(read_config_file(Path(args.workers_config).expanduser()))
    for name in ("min_replicas", "max_replicas", "models_per_replica"):
        if getattr(args, name, None) is not None:
            values[name] = getattr(args, name)
    if "max_replicas" not in values:
        values["max_replicas"] = max(values.get("min_replicas", 1), 1)
    config = replace(WorkerConfig(address=args.ray_address), **values)
    if config.max_replicas < config.min_replicas:
        raise UserError(f"max_replicas ({config.max_replicas}) is below min_replicas ({config.min_replicas})")
    return config
