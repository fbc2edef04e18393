"""Installing an extension from a git URL, and the rules that guard it.

Installing runs code from the internet on this machine (its install.py now, its scripts at the next
start), and enabling or disabling changes the app for everyone. So these are an admin's acts
(modules/security/admins.py: a user named in --admin-users, or, without logins, whoever uses the app on
loopback). Installing is also refused when other people can reach the app (a non-loopback address, a
share link), unless the owner starts it with --enable-insecure-extension-access, as in A1111."""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import uuid

from modules import cmd_args
from modules.errors import InvalidRequest, UserError
from modules.extensions.loader import INSTALL_SCRIPT, Extensions, run_install_script
from modules.extensions.metadata import NAME, Extension, read_extension

CLONE_TIMEOUT_SECONDS = 300
# git's ext:: transport runs commands; only plain transports are allowed.
ALLOWED_PROTOCOLS = "file:git:http:https:ssh"


class InstallRefused(UserError):
    """Installing is turned off for how the app was started."""


class NotAnAdmin(UserError):
    """Installing, enabling and disabling extensions are an admin's acts."""


def admin_refusal(extensions: Extensions, user: str | None) -> str | None:
    """Why `user` (logged-in name, None when anonymous) may not manage extensions; None when they may."""
    reason = extensions.admins.refusal(user)
    return None if reason is None else f"Only an admin may install, enable or disable extensions: {reason}."


def require_admin(extensions: Extensions, user: str | None) -> None:
    reason = admin_refusal(extensions, user)
    if reason:
        raise NotAnAdmin(reason)


def set_enabled(extensions: Extensions, enabled: dict[str, bool], user: str | None) -> None:
    """Enable and disable extensions for everyone: an admin's act."""
    require_admin(extensions, user)
    extensions.set_enabled(enabled)


def access_refusal(args: argparse.Namespace) -> str | None:
    """Why installing extensions is refused with these flags; None when it is allowed."""
    if getattr(args, "enable_insecure_extension_access", False):
        return None
    if getattr(args, "share", False):
        return "the app has a share link (--share)"
    host = cmd_args.server_name(args)
    if not cmd_args.is_loopback(host):
        return f"the app listens on {host}, so other machines can reach it"
    return None


def refusal_message(reason: str) -> str:
    return (f"Installing extensions is turned off because {reason}: anyone who can open the app could run code "
            "on this machine. Restart with --enable-insecure-extension-access to allow it.")


def name_from_url(url: str) -> str:
    """The folder name for a git URL: its last path part without .git (…/sd-webui-foo.git -> sd-webui-foo)."""
    return re.sub(r"\.git$", "", url.rstrip("/").replace("\\", "/").rsplit("/", 1)[-1].rsplit(":", 1)[-1])


def install_from_git(extensions: Extensions, url: str, name: str | None = None,
                     user: str | None = None) -> tuple[Extension, str]:
    """Clone `url` into the extensions folder and run its install.py; (extension, message for the user).
    `user` is who asks (their login name, None when anonymous). The extension loads at the next start."""
    require_admin(extensions, user)
    if extensions.install_refusal:
        raise InstallRefused(refusal_message(extensions.install_refusal))
    url = (url or "").strip()
    if not url:
        raise InvalidRequest("url", "give the git URL of the extension")
    if url.startswith("-") or "\n" in url:
        raise InvalidRequest("url", f"{url!r} is not a git URL")
    name = (name or "").strip() or name_from_url(url)
    if not NAME.match(name):
        raise InvalidRequest("name", f"{name!r} cannot be a folder name: use letters, digits, '-', '_' and '.'")
    target = extensions.folder / name
    if target.exists():
        raise InvalidRequest("name", f"extensions/{name} exists already: remove it first or pick another name")
    with extensions._lock:
        temporary = extensions.folder / f".installing-{name}-{uuid.uuid4().hex[:8]}"
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ALLOW_PROTOCOL": ALLOWED_PROTOCOLS}
        try:
            done = subprocess.run(["git", "clone", "--depth", "1", "--", url, str(temporary)], capture_output=True,
                                  text=True, timeout=CLONE_TIMEOUT_SECONDS, env=env)
        except subprocess.TimeoutExpired:
            shutil.rmtree(temporary, ignore_errors=True)
            raise UserError(f"git clone of {url} took over {CLONE_TIMEOUT_SECONDS} s and was stopped") from None
        except OSError as e:
            raise UserError(f"git could not be started ({e}): install git to install extensions from a URL") from None
        if done.returncode != 0:
            shutil.rmtree(temporary, ignore_errors=True)
            detail = [line for line in done.stderr.strip().splitlines() if line.strip()]
            raise UserError(f"git clone {url} failed: {detail[-1] if detail else f'exit code {done.returncode}'}")
        temporary.rename(target)
    extension = read_extension(target)
    extension.enabled = extensions.state.is_enabled(name) if extensions.state else True
    extensions.items.append(extension)
    message = f"Installed {name} into {target}."
    if (target / INSTALL_SCRIPT).is_file():
        ok, output = run_install_script(target)
        if not ok:
            extension.add_error(INSTALL_SCRIPT, "install.py failed", output)
            return extension, f"{message} Its install.py failed (see the table below and the log)."
        if extensions.state is not None:
            extensions.state.remember_install(name, hashlib.sha256((target / INSTALL_SCRIPT).read_bytes()).hexdigest())
        message += " Ran its install.py."
    return extension, f"{message} Restart the app to load it."
