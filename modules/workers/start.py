"""--workers ray at start-up: the pool is started, or one clear line and the jobs run in this process
(or the app exits, with --require-workers)."""
from __future__ import annotations

import atexit
import logging

from modules.errors import UserError

log = logging.getLogger(__name__)


def start_workers(backend, args) -> None:
    """Give `backend` its worker pool for --workers ray; SystemExit when that fails and --require-workers."""
    from modules.workers.config import worker_config

    try:
        config = worker_config(args)
    except UserError as e:  # a wrong file or value: the user must fix it, whatever --require-workers says
        raise SystemExit(f"--workers ray: {e}") from None
    try:
        from modules.workers.pool import WorkerPool

        pool = WorkerPool.start(config, backend.config)
    except UserError as e:
        if args.require_workers:
            raise SystemExit(f"--workers ray: {e}; exiting (--require-workers)") from None
        print(f"--workers ray: {e}; running jobs in this process instead", flush=True)
        return
    backend.workers = pool
    atexit.register(stop_workers, backend)


def stop_workers(backend) -> None:
    """Take the workers down (and the local Ray instance the app started); the jobs run here again."""
    pool, backend.workers = backend.workers, None
    if pool is not None:
        try:
            pool.close()
        except Exception as e:  # noqa: BLE001 - shutting down: say it, do not stop the exit
            log.warning("stopping the workers: %s", e)
