"""Align, restore, paste back (facexlib's FaceRestoreHelper, A1111's face_restoration_utils, with 2 points)."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

from modules.faces.detect import Face, find_faces
from modules.models.face_cascades import opencv

SIZE = 512
# The eye centres of facexlib's 5-point FFHQ template at 512x512 (the points GFPGAN was trained on).
TEMPLATE_EYES = np.array([[192.98138, 239.94708], [318.90277, 240.1936]])


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 matrix of the scale-rotation-shift taking the two points `src` onto `dst`."""
    s, d = complex(*(src[1] - src[0])), complex(*(dst[1] - dst[0]))
    if abs(s) < 1e-6:
        raise ValueError("eyes at one point")
    a = d / s  # rotation and scale as one complex factor
    m = np.array([[a.real, -a.imag], [a.imag, a.real]])
    shift = dst[0] - m @ src[0]
    return np.hstack([m, shift[:, None]])


def restore_faces(image: Image.Image, restore: Callable[[torch.Tensor], torch.Tensor],
                  check: Callable[[], None] | None = None) -> tuple[Image.Image, int]:
    """`image` with each face found replaced by `restore` of its aligned crop, and how many faces there were.
    `restore` takes and returns a 1x3x512x512 RGB tensor in [-1, 1] (GFPGAN's own range)."""
    cv2 = opencv()
    rgb = np.asarray(image.convert("RGB"))
    faces = find_faces(rgb)
    if not faces:
        return image, 0
    out = rgb.astype(np.float32)
    for face in faces:
        if check is not None:
            check()
        out = _paste(out, face, restore, cv2)
    return Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8)), len(faces)


def _paste(out: np.ndarray, face: Face, restore, cv2) -> np.ndarray:
    h, w = out.shape[:2]
    forward = similarity(np.array([face.left_eye, face.right_eye]), TEMPLATE_EYES)
    crop = cv2.warpAffine(np.clip(np.rint(out), 0, 255).astype(np.uint8), forward, (SIZE, SIZE),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(135, 133, 132))
    x = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.no_grad():
        y = restore(x).detach().float().cpu().clamp(-1, 1)
    restored = ((y[0].permute(1, 2, 0).numpy() + 1) * 127.5).astype(np.float32)
    inverse = cv2.invertAffineTransform(forward)
    back = cv2.warpAffine(restored, inverse, (w, h), flags=cv2.INTER_LINEAR)
    # The feathered mask, as facexlib's paste_faces_to_input_image: the warped square shrunk, then blurred.
    mask = cv2.warpAffine(np.ones((SIZE, SIZE), np.float32), inverse, (w, h), flags=cv2.INTER_LINEAR)
    mask = cv2.erode(mask, np.ones((2, 2), np.uint8))
    edge = int(np.sqrt(mask.sum()) // 20)
    if edge > 0:
        mask = cv2.erode(mask, np.ones((edge * 2, edge * 2), np.uint8))
        mask = cv2.GaussianBlur(mask, (edge * 2 + 1, edge * 2 + 1), 0)
    mask = mask[..., None]
    return np.where(mask > 0, mask * back + (1 - mask) * out, out)
