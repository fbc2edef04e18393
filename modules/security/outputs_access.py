"""The file route serves a user's outputs to that user only.

Each logged-in user's images go to outputs/<user>/ (modules/owners.py); Gradio's file route serves
anything under outputs/ to anyone it lets in. This middleware refuses, with the same 403 Gradio gives a
file outside its folders, any file under another user's folder. Files outside every user's folder (saved
before logins were set, or by anonymous use) stay readable, as before."""
from __future__ import annotations

import os
import re
from pathlib import Path

from starlette.responses import PlainTextResponse

from modules import owners

FILE_ROUTE = re.compile(r"^(?:/gradio_api)?/file=(.+)$", re.DOTALL)


class OutputsAccess:
    def __init__(self, app, outdir: Path, users: set[str], who):
        self.app = app
        self.outdir = Path(os.path.abspath(outdir))
        self.real_outdir = Path(os.path.realpath(outdir))
        self.folders = {owners.user_folder(name) for name in users}
        self.who = who

    async def __call__(self, scope, receive, send):
        match = FILE_ROUTE.match(scope.get("path", "")) if scope["type"] == "http" else None
        if match and self.folders:
            folder = self._user_folder_of(match.group(1))
            if folder is not None:
                name = self.who.login_name(scope)
                if name is None or owners.user_folder(name) != folder:
                    response = PlainTextResponse(f"File not allowed: {match.group(1)}.", status_code=403)
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)

    def _user_folder_of(self, path: str) -> str | None:
        """The user folder `path` lies in (as written, and with links followed), if any."""
        for root, full in ((self.outdir, os.path.abspath(path)), (self.real_outdir, os.path.realpath(path))):
            try:
                parts = Path(full).relative_to(root).parts
            except ValueError:
                continue
            if parts and parts[0] in self.folders:
                return parts[0]
        return None


def install(app, outdir: Path, users: set[str], who) -> None:
    app.add_middleware(OutputsAccess, outdir=outdir, users=users, who=who)
