"""txt2img's and img2img's "Restore faces": each decoded picture through the face restorer the request's
validation chose (Backend.with_face_restorer), before it is saved, as A1111 does; the infotext says which."""
from __future__ import annotations

from PIL import Image

from modules.errors import InvalidRequest


def face_restoration_infotext(request) -> dict:
    return {"Face restoration": request.face_restorer} if request.restore_faces and request.face_restorer else {}


def restored(image: Image.Image, request, hooks, check) -> Image.Image:
    """The picture with its faces restored (unchanged when none is found); the job holds the device."""
    if not request.restore_faces or not request.face_restorer:
        return image
    from modules.faces import restore_faces

    manager = hooks.p.backend.manager
    model = manager.face_restorer_model(request.face_restorer)
    if model is None:  # the file went away after the job was accepted
        raise InvalidRequest("restore_faces", f"the {request.face_restorer} model file is gone")
    device = next(model.model.parameters()).device

    def restore(x):
        # randomize_noise=False: GFPGAN's decoder noise fixed, so a seed gives the same picture again.
        return model.model(x.to(device), return_rgb=False, randomize_noise=False)[0]

    out, _ = restore_faces(image, restore, check)
    return out
