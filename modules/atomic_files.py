"""Write a file so that it is either wholly there under its final name, or not at all.

A temp file beside the target is written, flushed to disk (unless the caller says it need not be) and renamed
over it. mkstemp (and safetensors' save_file) create files readable by their owner only; a finished file gets the
permissions any newly created file gets (0666 minus the umask), as A1111's outputs do.

The temp name carries the writer's process id (".saving-<pid>-..."): a file left by a process that
died (kill -9, power loss) is told apart from one a running process is still writing; see leftovers.py."""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _read_umask() -> int:
    try:  # Linux says it without changing it
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o077)  # elsewhere: set and put back (briefly strict, never briefly lax)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_read_umask()


@contextmanager
def replacing(path: str | Path, prefix: str = ".saving-", durable: bool = True) -> Iterator[Path]:
    """Yields a temp path in `path`'s folder to write to; when the block ends without an error it
    becomes `path`. On an error it is removed and `path` is left as it was.

    The rename alone is what keeps a half-written file from ever having the final name, whatever the
    process does (killed, out of disk). `durable` adds an fsync before it, for power loss: without it a
    file renamed in the last seconds before the power went may come back empty. Settings, styles and model
    files replace data the user cannot make again, so they pay it (0.1 ms on a quiet disk, 1 ms or more
    when other writers keep it busy); generated pictures (images.py) do not, as A1111 does not: a new name
    each, and the same picture again from its seed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{prefix}{os.getpid()}-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        if durable:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
