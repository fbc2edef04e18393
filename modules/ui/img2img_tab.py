"""The img2img tab (A1111's layout and names): a picture to start from — uploaded, pasted, or sent from
txt2img or PNG Info — repainted as a whole, or only where a mask drawn with the brush (Inpaint) or uploaded
(Inpaint upload) says; pads per side outpaint. Layout and wiring only: a click builds an Img2ImgRequest for
the runner; the controls shared with txt2img come from modules/ui/generation_tab.py."""
from __future__ import annotations

import gradio as gr
from PIL import Image

from modules.capabilities.img2img import IMG2IMG, Img2ImgRequest
from modules.capabilities.img2img.request import MASKED_CONTENT, ORIGINAL, RESIZE_MODES
from modules.generation.infotext import parse_infotext
from modules.image_limits import open_image
from modules.ui.common import owner_of, queue_user_of
from modules.ui.components import Slider
from modules.ui.errors import user_errors
from modules.ui.generation_tab import BASE_NAMES, GenerationTab, variation_fields
from modules.ui.refiner_controls import NAMES as REFINER_NAMES
from modules.ui.refiner_controls import RefinerControls
from modules.ui.img2img_inputs import IMG2IMG as PLAIN
from modules.ui.img2img_inputs import INPAINT, INPAINT_UPLOAD, fitting_size, pictures

NAMES = ["mode", "init_image", "inpaint_sketch", "inpaint_image", "inpaint_mask", "resize_mode", "denoising_strength",
         "mask_blur", "mask_mode", "inpainting_fill", "inpaint_full_res", "inpaint_full_res_padding",
         "pad_left", "pad_right", "pad_top", "pad_bottom"]
FLOW_NAMES = ["distilled_cfg_scale", "forge_additional_modules"]  # FLUX.1 dev's guidance, Forge's component files
MASK_MODES = ("Inpaint masked", "Inpaint not masked")
INPAINT_AREAS = ("Whole picture", "Only masked")


class Img2ImgTab(GenerationTab):
    tab = "img2img"

    def build(self) -> None:
        self.build_prompt_row()
        with gr.Row():
            with gr.Column():
                self._build_pictures()
                self.resize_mode = gr.Radio(list(RESIZE_MODES), value=RESIZE_MODES[0], type="index",
                                            label="Resize mode", elem_id="resize_mode")
                self._build_inpaint_controls()
                self.build_sampling()
                self.build_modules()  # the VAE / Text Encoder files, beside the sampling settings
                self.denoising = Slider(0, 1, value=0.75, step=0.01, label="Denoising strength",
                                        elem_id="img2img_denoising_strength")
                self.build_restore_faces()
                self.refiner = RefinerControls()
                self.refiner.build(self.backend, self.tab)
                self.build_seed_and_scripts()
            with gr.Column():
                self.build_output()
        self.wire(self._generate, [*self.own_inputs(), *self.refiner.inputs(), self.distilled_cfg_scale, self.modules,
                                   self.restore_faces],
                  [*NAMES, *REFINER_NAMES, *FLOW_NAMES, "restore_faces"])
        # Picking a checkpoint sets its family's samplers, steps and CFG scales; the size follows the picture.
        self.checkpoint.input(self.family_values, inputs=[self.checkpoint, self.sampler],
                              outputs=self.family_outputs(), api_name=False, queue=False)
        for picture in (self.init_image, self.inpaint_image):  # Width and Height follow a new picture
            picture.upload(_size_of, inputs=picture, outputs=[self.width, self.height], api_name=False, queue=False)
        self.sketch.upload(lambda value: _size_of((value or {}).get("background")), inputs=self.sketch,
                           outputs=[self.width, self.height], api_name=False, queue=False)

    def _build_pictures(self) -> None:
        self.mode = gr.State(PLAIN)
        with gr.Tabs(elem_id="mode_img2img"):
            with gr.Tab("img2img", id="img2img_img2img_tab") as plain:
                self.init_image = gr.Image(label="Image for img2img", type="pil", image_mode="RGB", height=420,
                                           sources=["upload", "clipboard"], elem_id="img2img_image")
            with gr.Tab("Inpaint", id="img2img_inpaint_tab") as inpaint:
                # A white brush paints the area to repaint; the eraser takes strokes back.
                self.sketch = gr.ImageEditor(
                    label="Image for inpainting with mask", type="pil", height=420, sources=["upload", "clipboard"],
                    brush=gr.Brush(default_size=8, colors=["#ffffff"], default_color="#ffffff", color_mode="fixed"),
                    eraser=gr.Eraser(), layers=False, transforms=(), elem_id="img2maskimg")
            with gr.Tab("Inpaint upload", id="img2img_inpaint_upload_tab") as upload:
                with gr.Row():
                    self.inpaint_image = gr.Image(label="Image", type="pil", image_mode="RGB", height=300,
                                                  sources=["upload", "clipboard"], elem_id="img_inpaint_base")
                    self.inpaint_mask = gr.Image(label="Mask (white: repaint)", type="pil", image_mode="L",
                                                 height=300, sources=["upload", "clipboard"],
                                                 elem_id="img_inpaint_mask")
        self._sub_tabs = ((plain, PLAIN), (inpaint, INPAINT), (upload, INPAINT_UPLOAD))

    def _build_inpaint_controls(self) -> None:
        with gr.Group(visible=False, elem_id="img2img_inpaint_controls") as self.inpaint_group:
            self.mask_blur = Slider(0, 64, value=4, step=1, label="Mask blur", elem_id="img2img_mask_blur")
            self.mask_mode = gr.Radio(list(MASK_MODES), value=MASK_MODES[0], type="index", label="Mask mode",
                                      elem_id="img2img_mask_mode")
            self.inpainting_fill = gr.Radio(list(MASKED_CONTENT), value=MASKED_CONTENT[ORIGINAL], type="index",
                                            label="Masked content", elem_id="img2img_inpainting_fill")
            with gr.Row():
                self.inpaint_area = gr.Radio(list(INPAINT_AREAS), value=INPAINT_AREAS[0], type="index",
                                             label="Inpaint area", elem_id="img2img_inpaint_full_res")
                self.padding = Slider(0, 256, value=32, step=4, label="Only masked padding, pixels",
                                      elem_id="img2img_inpaint_full_res_padding")
        with gr.Accordion("Outpaint: pad the picture (the new area is painted)", open=False,
                          elem_id="img2img_outpaint"):
            with gr.Row():
                self.pads = [Slider(0, 512, value=0, step=8, label=f"Pad {side}", elem_id=f"img2img_pad_{side}")
                             for side in ("left", "right", "top", "bottom")]
        for tab, mode in self._sub_tabs:
            tab.select(lambda m=mode: (m, gr.Group(visible=m != PLAIN)), outputs=[self.mode, self.inpaint_group],
                       api_name=False, queue=False)

    def own_inputs(self) -> list:
        return [self.mode, self.init_image, self.sketch, self.inpaint_image, self.inpaint_mask, self.resize_mode,
                self.denoising, self.mask_blur, self.mask_mode, self.inpainting_fill, self.inpaint_area,
                self.padding, *self.pads]

    def build_sampling(self, defaults: dict | None = None) -> None:
        super().build_sampling(self.backend.checkpoint_defaults(self.checkpoint.value))  # the shown one's family

    def _generate(self, *values, request: gr.Request, scripts=None):
        own = dict(zip(NAMES, values[len(BASE_NAMES):]))
        rest = values[len(BASE_NAMES) + len(NAMES):]
        refiner = RefinerControls.request_fields(list(rest[:len(REFINER_NAMES)]))
        rest = rest[len(REFINER_NAMES):]  # then the flow controls and Restore faces, absent when a caller sends fewer
        flow = dict(zip(FLOW_NAMES, rest))
        restore_faces = bool((*rest[len(FLOW_NAMES):], False)[0])
        base = values[:len(BASE_NAMES)]
        return self._run(*base[:-1], request, scripts=scripts, styles=base[-1], restore_faces=restore_faces, **own,
                         **refiner, **flow)

    @user_errors
    def _run(self, checkpoint, prompt, negative_prompt, sampler, steps, cfg_scale, width, height, seed,
             batch_count, batch_size, scheduler, seed_extra, subseed, subseed_strength, seed_resize_from_w,
             seed_resize_from_h, request: gr.Request, scripts=None, *, styles=None, mode, init_image, inpaint_sketch,
             inpaint_image, inpaint_mask, mask_mode, inpaint_full_res, forge_additional_modules=(), **options):
        """`forge_additional_modules`: Forge's component files; `options`: the rest of the request's fields
        (denoising_strength, mask_blur ..., refiner_*, distilled_cfg_scale)."""
        image, mask = pictures(mode, init_image, inpaint_sketch, inpaint_image, inpaint_mask)
        job = self.backend.new_job("img2img", owner_of(request), queue_user=queue_user_of(request))
        img2img_request = Img2ImgRequest(
            prompt=prompt, negative_prompt=negative_prompt, sampler=sampler, scheduler=scheduler, steps=steps,
            cfg_scale=cfg_scale,
            width=width, height=height, seed=-1 if seed is None else seed, batch_count=batch_count,
            batch_size=batch_size, checkpoint=checkpoint or None,
            **variation_fields(seed_extra, subseed, subseed_strength, seed_resize_from_w, seed_resize_from_h),
            init_images=[image], mask=mask, styles=list(styles or []),
            inpainting_mask_invert=mask_mode == 1, inpaint_full_res=inpaint_full_res == 1,
            forge_additional_modules=tuple(forge_additional_modules or ()), **options)
        yield from self.run_job(IMG2IMG, img2img_request, job, scripts)

    def send_from(self, source_button: gr.Button, inputs: list, picture_and_text, tabs: gr.Tabs) -> None:
        """`source_button` sends a picture and its infotext here: picture_and_text(*inputs) -> (PIL, text)."""
        from modules.ui.pnginfo_tab import flow_values, send_values, styles_value, with_styles

        targets = [self.prompt, self.negative_prompt, self.sampler, self.steps, self.cfg_scale]

        @user_errors
        def send(*values):
            image, text = picture_and_text(*values)
            size = fitting_size(image)
            parsed = with_styles(parse_infotext(text) if text else {}, self.backend.styles.styles())
            return [image, *send_values(parsed)[:len(targets)], *(size or (gr.skip(), gr.skip())),
                    styles_value(parsed), *flow_values(parsed), gr.Tabs(selected="img2img")]

        source_button.click(send, inputs=inputs, outputs=[self.init_image, *targets, self.width, self.height,
                                                          self.styles, self.distilled_cfg_scale, self.modules, tabs],
                            api_name=False, show_progress="hidden")


def _size_of(image: Image.Image | None):
    size = fitting_size(image)
    return list(size) if size else [gr.skip(), gr.skip()]


def gallery_picture(gallery, selected, infotext) -> tuple[Image.Image, str]:
    """txt2img's picked picture (the first when none was picked) and its infotext, for "Send to img2img"."""
    from modules.errors import UserError

    if not gallery:
        raise UserError("Send to img2img: generate a picture first")
    index = selected if isinstance(selected, int) and 0 <= selected < len(gallery) else 0
    item = gallery[index]
    path = item[0] if isinstance(item, (list, tuple)) else item
    with open_image(path, "image") as picture:
        picture.load()
        text = picture.info.get("parameters") or infotext or ""
        return picture.convert("RGB"), text
