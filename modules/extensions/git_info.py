"""What A1111's GET /sdapi/v1/extensions tells of an extension installed from git: its remote, branch,
commit and commit date, read from the files of its .git folder (text and one zlib-compressed object;
no git command runs). An extension that is no git checkout, or whose commit is packed, has blanks."""
from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from pathlib import Path

MAX_FILE_BYTES = 1 << 20  # a .git/config or a commit object: far smaller than this
_HASH = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class GitInfo:
    remote: str | None = None
    branch: str | None = None
    commit_hash: str | None = None
    commit_date: int | None = None  # seconds since 1970, as A1111 gives it


def git_info(folder: Path) -> GitInfo:
    git = Path(folder) / ".git"
    if not git.is_dir():
        return GitInfo()
    head = _read(git / "HEAD")
    branch, commit = None, None
    if head is not None:
        head = head.decode("utf-8", "replace").strip()
        if head.startswith("ref: "):
            ref = head[5:]
            branch = ref.rsplit("/", 1)[-1] if ref.startswith("refs/heads/") else None
            commit = _ref_hash(git, ref)
        elif _HASH.match(head):
            commit = head
    return GitInfo(_remote(git), branch, commit, _commit_date(git, commit) if commit else None)


def _read(path: Path) -> bytes | None:
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_FILE_BYTES:
            return None
        return path.read_bytes()
    except OSError:
        return None


def _ref_hash(git: Path, ref: str) -> str | None:
    if ".." in ref or not ref.startswith("refs/"):
        return None
    text = _read(git / ref)
    if text is not None:
        value = text.decode("ascii", "replace").strip()
        return value if _HASH.match(value) else None
    packed = _read(git / "packed-refs")
    for line in (packed or b"").decode("utf-8", "replace").splitlines():
        parts = line.split(" ")
        if len(parts) == 2 and parts[1] == ref and _HASH.match(parts[0]):
            return parts[0]
    return None


def _remote(git: Path) -> str | None:
    config = _read(git / "config")
    if config is None:
        return None
    section = None
    for line in config.decode("utf-8", "replace").splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == '[remote "origin"]' and line.replace(" ", "").startswith("url="):
            return line.split("=", 1)[1].strip()
    return None


def _commit_date(git: Path, commit: str) -> int | None:
    raw = _read(git / "objects" / commit[:2] / commit[2:])
    if raw is None:
        return None
    try:
        body = zlib.decompressobj().decompress(raw, MAX_FILE_BYTES)
    except zlib.error:
        return None
    for line in body.split(b"\n"):
        if line.startswith(b"committer "):
            parts = line.split(b" ")
            try:
                return int(parts[-2])
            except (IndexError, ValueError):
                return None
        if not line:
            break
    return None
