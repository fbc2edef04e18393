"""Frontal faces and their eye centres, from OpenCV's Haar cascades (modules/models/face_cascades.py).

A1111 (through facexlib's RetinaFace) gets five landmarks per face: eyes, nose tip, mouth corners. The
cascades give a face box and, where they find them, the two eyes; the alignment then uses the two eye
centres alone (a 2-point similarity: scale, rotation, shift), and where the eyes are not both found, the
positions the eyes have in an average face box. Faces turned sideways are not found."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modules.models.face_cascades import cascades, lock, opencv

MAX_FACES = 32        # the largest ones, when a crowd is in the picture: the work of each face is bounded
MIN_FACE_SIDE = 24    # pixels; the cascades' own window
EYE_LEVEL = 0.38      # where eyes sit in a Haar face box, as fractions of its size
EYE_SPREAD = 0.2      # each eye's distance from the box's middle


@dataclass(frozen=True)
class Face:
    box: tuple[int, int, int, int]  # x, y, w, h
    left_eye: tuple[float, float]   # in the picture's pixels; "left" as seen in the picture
    right_eye: tuple[float, float]


def find_faces(rgb: np.ndarray) -> list[Face]:
    """The faces of an HxWx3 uint8 picture, largest first."""
    cv2 = opencv()
    gray = cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    face_cascade, eye_cascade = cascades()
    side = max(MIN_FACE_SIDE, min(gray.shape) // 16)
    with lock:
        boxes = face_cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(side, side))
    boxes = sorted((tuple(int(v) for v in b) for b in boxes), key=lambda b: -b[2] * b[3])[:MAX_FACES]
    return [Face(box, *_eyes(gray, box, eye_cascade)) for box in boxes]


def _eyes(gray: np.ndarray, box, eye_cascade) -> tuple[tuple[float, float], tuple[float, float]]:
    x, y, w, h = box
    upper = gray[y:y + int(h * 0.6), x:x + w]  # eyes are in the upper part of the box
    with lock:
        found = eye_cascade.detectMultiScale(upper, scaleFactor=1.1, minNeighbors=3,
                                             minSize=(max(4, w // 10), max(4, w // 10)), maxSize=(w // 2, w // 2))
    eyes = sorted((tuple(int(v) for v in e) for e in found), key=lambda e: -e[2] * e[3])[:2]
    if len(eyes) == 2:
        (ax, ay), (bx, by) = [(x + ex + ew / 2, y + ey + eh / 2) for ex, ey, ew, eh in eyes]
        if abs(ax - bx) > w * 0.2 and abs(ay - by) < h * 0.25:  # two eyes side by side, not one found twice
            return ((ax, ay), (bx, by)) if ax < bx else ((bx, by), (ax, ay))
    middle, level = x + w / 2, y + h * EYE_LEVEL
    return (middle - w * EYE_SPREAD, level), (middle + w * EYE_SPREAD, level)
