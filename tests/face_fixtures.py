"""For face restoration tests: a random-weight GFPGAN file (spandrel knows GFPGAN only at its real size, 512
px and 350 MB, so it is built once per session in a temporary folder) and a drawn face OpenCV's cascades find
(no face photographs are available to the tests)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw, ImageFilter


def save_random_gfpgan(path: Path) -> Path:
    from modules.models.spandrel_import import import_spandrel

    import_spandrel()
    from safetensors.torch import save_file
    from spandrel.architectures.GFPGAN import GFPGAN

    torch.manual_seed(0)
    model = GFPGAN(out_size=512, num_style_feat=512, channel_multiplier=2, decoder_load_path=None, fix_decoder=False,
                   num_mlp=8, input_is_latent=True, different_w=True, narrow=1, sft_half=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="session")
def gfpgan_file(tmp_path_factory) -> Path:
    return save_random_gfpgan(tmp_path_factory.mktemp("gfpgan") / "GFPGAN" / "GFPGANv1.4-random.safetensors")


def face_picture(size: int = 256) -> Image.Image:
    """A drawn frontal face (skin oval, hair, brows, eyes, nose, mouth) on a blue-grey background."""
    image = Image.new("RGB", (size, size), (70, 90, 110))
    draw = ImageDraw.Draw(image)
    c, r = size / 2, size * 0.3
    draw.ellipse((c - r * 0.8, c - r, c + r * 0.8, c + r * 1.05), fill=(225, 180, 150))
    draw.rectangle((c - r * 0.85, c - r * 1.05, c + r * 0.85, c - r * 0.6), fill=(60, 40, 30))
    for side in (-1, 1):
        ex, ey = c + side * r * 0.35, c - r * 0.2
        draw.rectangle((ex - r * 0.22, ey - r * 0.22, ex + r * 0.22, ey - r * 0.15), fill=(70, 50, 40))
        draw.ellipse((ex - r * 0.16, ey - r * 0.08, ex + r * 0.16, ey + r * 0.08), fill=(250, 250, 250))
        draw.ellipse((ex - r * 0.07, ey - r * 0.07, ex + r * 0.07, ey + r * 0.07), fill=(40, 30, 30))
    draw.polygon([(c, c - r * 0.1), (c - r * 0.12, c + r * 0.25), (c + r * 0.12, c + r * 0.25)], fill=(200, 150, 125))
    draw.ellipse((c - r * 0.3, c + r * 0.45, c + r * 0.3, c + r * 0.6), fill=(150, 60, 60))
    return image.filter(ImageFilter.GaussianBlur(size / 128))
