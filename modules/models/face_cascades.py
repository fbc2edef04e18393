"""OpenCV's Haar cascades for faces and eyes (the XML files shipped inside opencv-python-headless 4.x),
loaded once. They find frontal faces offline with no model file from the user; OpenCV 5 dropped them."""
from __future__ import annotations

import functools
import threading

FACE, EYE = "haarcascade_frontalface_default.xml", "haarcascade_eye.xml"
_lock = threading.Lock()


def opencv():
    """The cv2 module, or a UserError saying what to install."""
    from modules.errors import UserError

    try:
        import cv2
    except ImportError:
        raise UserError("face restoration needs OpenCV: pip install opencv-python-headless==4.14.0.94") from None
    return cv2


@functools.lru_cache(maxsize=None)
def _cascade(file: str):
    cv2 = opencv()
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + file)
    if cascade.empty():
        from modules.errors import UserError
        raise UserError(f"OpenCV's {file} is missing: install opencv-python-headless 4.x (OpenCV 5 has no cascades)")
    return cascade


def cascades():
    """(face cascade, eye cascade). detectMultiScale is not safe to call from two threads on one object:
    callers hold `lock` while detecting."""
    with _lock:
        return _cascade(FACE), _cascade(EYE)


lock = threading.Lock()
