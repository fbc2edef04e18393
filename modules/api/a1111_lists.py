"""A1111's list routes for what this server has none or few of, answered in A1111's shapes so clients that
read them at start-up (bots, front ends, A1111's own tests) work:

    GET  /sdapi/v1/hypernetworks      [] : hypernetworks are not supported
    GET  /sdapi/v1/face-restorers     GFPGAN when models/GFPGAN holds a file
    GET  /sdapi/v1/realesrgan-models  the upscaler files of models/RealESRGAN
    GET  /sdapi/v1/extensions         our extensions (name, remote, branch, commit_hash, version, commit_date, enabled)
    POST /sdapi/v1/refresh-vae        rescans models/VAE (and --vae-dir)
    GET  /internal/ping               {} : the server answers"""
from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from modules.api.errors import api_route_class
from modules.extensions.git_info import git_info
from modules.public_paths import shown

if TYPE_CHECKING:
    from modules.api.routes import Api


class HypernetworkItem(BaseModel):
    name: str
    path: str | None = None


class FaceRestorerItem(BaseModel):
    name: str
    cmd_dir: str | None = None


class RealesrganItem(BaseModel):
    name: str
    path: str | None = None
    scale: int | None = None


class ExtensionItem(BaseModel):
    name: str
    remote: str
    branch: str
    commit_hash: str
    version: str
    commit_date: int
    enabled: bool


def add_routes(api: "Api") -> None:
    router = api.router
    backend = api.backend

    @router.get("/hypernetworks", response_model=list[HypernetworkItem])
    def hypernetworks():
        """Hypernetworks are not supported: always an empty list."""
        return []

    @router.get("/face-restorers", response_model=list[FaceRestorerItem])
    def face_restorers():
        """The face restorers whose model file is in models/GFPGAN (restore_faces uses them): GFPGAN or none."""
        files = backend.manager.face_restorer_files
        return [{"name": name, "cmd_dir": shown(files.restorer(name).path.parent)} for name in files.available()]

    @router.get("/realesrgan-models", response_model=list[RealesrganItem])
    def realesrgan_models():
        """The upscaler files in models/RealESRGAN (Extras and hires fix use them by name)."""
        return [{"name": f.name, "path": shown(f.path), "scale": None}
                for f in backend.manager.upscaler_files.scan() if f.path.parent.name == "RealESRGAN"]

    @router.get("/extensions", response_model=list[ExtensionItem])
    def extensions():
        """The extensions in extensions/, with what their git checkout says (blank when not from git)."""
        answer = []
        for extension in backend.extensions.items:
            info = git_info(extension.folder)
            answer.append({"name": extension.name, "remote": info.remote or "", "branch": info.branch or "",
                           "commit_hash": info.commit_hash or "", "version": extension.version or "",
                           "commit_date": info.commit_date or 0, "enabled": extension.enabled})
        return answer

    @router.post("/refresh-vae")
    def refresh_vae():
        """Rescan the VAE folders (GET sd-vae lists what is found)."""
        backend.manager.vae_files.scan()
        return None


def ping_router(api: "Api") -> APIRouter:
    """/internal/ping, behind the same logins as the API."""
    router = APIRouter(route_class=api_route_class(api.logins), dependencies=[Depends(api.current_user)])

    @router.get("/internal/ping")
    def ping():
        return {}
    return router
