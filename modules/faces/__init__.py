"""Face restoration as A1111 does it: find the faces, align each to the 512x512 FFHQ template, restore it
with the model (GFPGAN), and paste it back through the inverse warp with a feathered mask. Pixels outside the
faces' warped squares are never changed; a picture with no face found comes back unchanged (as in A1111)."""
from modules.faces.restore import restore_faces

__all__ = ["restore_faces"]
