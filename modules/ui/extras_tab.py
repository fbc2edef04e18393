"""The Extras tab (A1111's layout and names): upscale one image or a batch of uploads with upscaler 1 and,
blended over it, upscaler 2; scale by a factor or to a size. The job runs through the runner (the Extras
capability, modules/capabilities/extras); outputs go to outputs/extras-images with their parameters."""
from __future__ import annotations

from pathlib import Path

import gradio as gr

from modules.backend import Backend
from modules.capabilities.extras import ExtrasRequest, extras
from modules.capabilities.extras.request import MAX_FACTOR, MAX_IMAGES, MAX_SIDE, RESIZE_BY, RESIZE_TO
from modules.errors import InvalidRequest
from modules.image_limits import UNREADABLE, UNREADABLE_HINT, open_image
from modules.ui.components import Slider
from modules.ui.common import owner_of, queue_user_of
from modules.ui.errors import user_errors
from modules.upscalers import upscaler_names

SINGLE, BATCH = "single", "batch"
RESIZE_MODES = ["Scale by", "Scale to"]  # resize_mode 0 and 1


def _open(path: str, field: str, name: str | None = None):
    """An uploaded image, its size checked before decoding; InvalidRequest naming the upload otherwise."""
    try:
        image = open_image(path, field, name)
        image.load()
        return image
    except UNREADABLE:
        raise InvalidRequest(field, f"{name + ' ' if name else ''}{UNREADABLE_HINT}") from None


def _upload_name(upload) -> tuple[str, str]:
    """(path, the user's file name) of a gr.File upload."""
    path = upload if isinstance(upload, str) else getattr(upload, "name", None) or upload.get("path")
    original = getattr(upload, "orig_name", None) or (upload.get("orig_name") if isinstance(upload, dict) else None)
    return str(path), Path(original or path).name


class ExtrasTab:
    def __init__(self, backend: Backend):
        self.backend = backend

    def names(self) -> list[str]:
        return upscaler_names(self.backend.manager)

    def build(self) -> None:
        names = self.names()
        # Which input tab is open; a hidden component (not gr.State), so API clients can pick batch too.
        self.mode = gr.Radio([SINGLE, BATCH], value=SINGLE, visible=False, elem_id="extras_mode")
        with gr.Row():
            with gr.Column():
                with gr.Tabs():
                    with gr.Tab("Single Image", id="extras_single_tab", elem_id="extras_single_tab") as single:
                        self.image = gr.Image(label="Source", type="filepath", sources=["upload", "clipboard"],
                                              height=320, elem_id="extras_image")
                    with gr.Tab("Batch Process", id="extras_batch_tab", elem_id="extras_batch_tab") as batch:
                        self.files = gr.File(label="Batch Process", file_count="multiple", file_types=["image"],
                                             elem_id="extras_image_batch")
                single.select(lambda: SINGLE, outputs=self.mode, api_name=False, show_progress="hidden")
                batch.select(lambda: BATCH, outputs=self.mode, api_name=False, show_progress="hidden")
                self.resize_mode = gr.Radio(RESIZE_MODES, value=RESIZE_MODES[RESIZE_BY], type="index",
                                            label="Resize", elem_id="extras_resize_mode")
                self.upscaling_resize = Slider(1.0, MAX_FACTOR, value=4, step=0.05, label="Resize",
                                               elem_id="extras_upscaling_resize")
                with gr.Row(visible=False) as self.size_row:
                    self.upscaling_resize_w = gr.Number(512, precision=0, minimum=1, maximum=MAX_SIDE, label="Width",
                                                        elem_id="extras_upscaling_resize_w")
                    self.upscaling_resize_h = gr.Number(512, precision=0, minimum=1, maximum=MAX_SIDE, label="Height",
                                                        elem_id="extras_upscaling_resize_h")
                    self.upscaling_crop = gr.Checkbox(True, label="Crop to fit", elem_id="extras_upscaling_crop")
                with gr.Row(equal_height=True):
                    self.upscaler_1 = gr.Dropdown(names, value=names[0], label="Upscaler 1",
                                                  elem_id="extras_upscaler_1")
                    self.upscaler_2 = gr.Dropdown(names, value=names[0], label="Upscaler 2",
                                                  elem_id="extras_upscaler_2")
                    self.refresh = gr.Button("↻", elem_id="extras_refresh", scale=0, min_width=48)
                self.visibility = Slider(0.0, 1.0, value=0.0, step=0.001, label="Upscaler 2 visibility",
                                         elem_id="extras_upscaler_2_visibility")
                self.generate = gr.Button("Generate", variant="primary", elem_id="extras_generate")
            with gr.Column():
                self.gallery = gr.Gallery(label="Result", columns=2, height=480, elem_id="extras_gallery",
                                          format="png")
                self.info = gr.Textbox(label="Parameters", lines=3, interactive=False, elem_id="extras_html_info")
        self.resize_mode.change(lambda mode: {self.upscaling_resize: gr.update(visible=mode == RESIZE_BY),
                                              self.size_row: gr.update(visible=mode == RESIZE_TO)},
                                inputs=self.resize_mode, outputs=[self.upscaling_resize, self.size_row],
                                api_name=False, show_progress="hidden")
        self.refresh.click(self.refreshed, outputs=[self.upscaler_1, self.upscaler_2], api_name=False,
                           show_progress="hidden")
        self.generate.click(self.run, inputs=[self.mode, self.image, self.files, self.resize_mode,
                                              self.upscaling_resize, self.upscaling_resize_w, self.upscaling_resize_h,
                                              self.upscaling_crop, self.upscaler_1, self.upscaler_2, self.visibility],
                            outputs=[self.gallery, self.info], api_name="extras", concurrency_limit=None)

    @user_errors
    def refreshed(self) -> dict:
        names = self.names()
        return {self.upscaler_1: gr.update(choices=names), self.upscaler_2: gr.update(choices=names)}

    def request(self, mode, image, files, resize_mode, upscaling_resize, width, height, crop, upscaler_1,
                upscaler_2, visibility) -> ExtrasRequest:
        if mode == BATCH:
            uploads = list(files or [])
            if not uploads:
                raise InvalidRequest("batch", "no images: drop one or more pictures into Batch Process")
            if len(uploads) > MAX_IMAGES:
                raise InvalidRequest("batch", f"at most {MAX_IMAGES} images at once, got {len(uploads)}")
            named = [_upload_name(u) for u in uploads]
            images, names = [_open(path, "batch", name) for path, name in named], [name for _, name in named]
        else:
            if not image:
                raise InvalidRequest("image", "no image: drop a picture into Source")
            images, names = [_open(image, "image")], ["extras.png"]
        return ExtrasRequest(images=images, names=names, resize_mode=resize_mode or 0,
                             upscaling_resize=upscaling_resize, upscaling_resize_w=width, upscaling_resize_h=height,
                             upscaling_crop=bool(crop), upscaler_1=upscaler_1, upscaler_2=upscaler_2,
                             extras_upscaler_2_visibility=visibility)

    @user_errors
    def run(self, mode, image, files, resize_mode, upscaling_resize, width, height, crop, upscaler_1, upscaler_2,
            visibility, request: gr.Request = None) -> dict:
        """Upscale the single image or every batch upload: the gallery and the parameters of the first."""
        extras_request = self.request(mode, image, files, resize_mode, upscaling_resize, width, height, crop,
                                      upscaler_1, upscaler_2, visibility)
        result = self.backend.runner.run(extras, extras_request, owner=owner_of(request),
                                         queue_user=queue_user_of(request))
        return {self.gallery: list(zip(result.images, [Path(n).name for n in extras_request.names])),
                self.info: result.html_info}
