"""Restore faces: txt2img's and img2img's (each decoded picture through the restorer the request's validation
chose, Backend.with_face_restorer, before it is saved, as A1111 does; the infotext says which) and Extras'
(gfpgan_visibility: the restored picture blended over the upscaled one, after the upscale, as A1111 orders them)."""
from __future__ import annotations

from PIL import Image

from modules.errors import InvalidRequest


def face_restoration_infotext(request) -> dict:
    return {"Face restoration": request.face_restorer} if request.restore_faces and request.face_restorer else {}


def lazy_restorer(manager, name: str, field: str):
    """GFPGAN's 512 px restore function, the model read only once a face is found (most pictures have none),
    then taken from the manager's cache for each face."""

    def restore(x):
        with manager.face_restorer_model(name) as model:
            if model is None:  # the file went away after the job was accepted
                raise InvalidRequest(field, f"the {name} model file is gone")
            device = next(model.model.parameters()).device
            # randomize_noise=False: GFPGAN's decoder noise fixed, so a seed gives the same picture again.
            return model.model(x.to(device), return_rgb=False, randomize_noise=False)[0]

    return restore


def restored(image: Image.Image, request, hooks, check) -> Image.Image:
    """The picture with its faces restored (unchanged when none is found); the job holds the device."""
    if not request.restore_faces or not request.face_restorer:
        return image
    from modules.faces import restore_faces

    restore = lazy_restorer(hooks.p.backend.manager, request.face_restorer, "restore_faces")
    out, _ = restore_faces(image, restore, check)
    return out


def restored_for_extras(image: Image.Image, visibility: float, manager, check) -> Image.Image:
    """Extras' GFPGAN step: the restored picture at `visibility` over `image` (A1111's Image.blend)."""
    if visibility <= 0:
        return image
    from modules.faces import restore_faces

    out, _ = restore_faces(image, lazy_restorer(manager, "GFPGAN", "gfpgan_visibility"), check)
    return out if visibility >= 1 else Image.blend(image, out, visibility)
