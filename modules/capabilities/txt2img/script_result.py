"""What a selected script's run() returned, as a txt2img result (A1111's scripts return several shapes)."""
from __future__ import annotations

from modules.capabilities.txt2img.request import Txt2ImgRequest
from modules.capabilities.txt2img.run import Txt2ImgResult
from modules.extensions.scripts import ScriptOutput


def as_txt2img_result(output, request: Txt2ImgRequest) -> Txt2ImgResult:
    """A Txt2ImgResult as it is; a list of images or a ScriptOutput, with infotexts from the images'
    own `parameters` where the script gave none."""
    if isinstance(output, Txt2ImgResult):
        return output
    if isinstance(output, (list, tuple)):
        output = ScriptOutput(images=list(output))
    images = list(getattr(output, "images", []) or [])
    infotexts = list(getattr(output, "infotexts", []) or [])
    infotexts += [str(i.info.get("parameters", "")) for i in images[len(infotexts):]]
    return Txt2ImgResult(request, images=images, infotexts=infotexts, seeds=list(getattr(output, "seeds", []) or []),
                         paths=list(getattr(output, "paths", []) or []))
