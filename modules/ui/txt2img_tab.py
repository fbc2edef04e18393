"""The txt2img tab: layout and wiring only. A click builds a Txt2ImgRequest and hands it to the runner; the
handler answers {component: value}, and errors leave as toasts (@user_errors). The controls it shares with
img2img are built by modules/ui/generation_tab.py."""
from __future__ import annotations

import gradio as gr

from modules.capabilities.txt2img import TXT2IMG, Txt2ImgRequest
from modules.ui.common import owner_of, queue_user_of
from modules.ui.errors import user_errors
from modules.ui.generation_tab import BASE_NAMES, GenerationTab, variation_fields, selected_index
from modules.ui.hires_controls import NAMES as HIRES_NAMES
from modules.ui.hires_controls import HiresControls


class Txt2ImgTab(GenerationTab):
    """Holds the tab's components so other tabs (PNG Info) can send parameters to them."""

    tab = "txt2img"

    def build(self) -> None:
        self.build_prompt_row()
        with gr.Row():
            with gr.Column():
                self.build_sampling()
                self.hires = HiresControls()
                self.hires.build(self.backend.manager)
                self.build_seed_and_scripts()
            with gr.Column():
                self.build_output()
                self.send_to_img2img = gr.Button("Send to img2img", elem_id="txt2img_send_to_img2img", size="sm")
        self.selected = gr.State(0)  # the gallery's picked picture, for "Send to img2img"
        self.gallery.select(selected_index, outputs=self.selected, api_name=False, queue=False)
        self.wire(self._generate, self.hires.inputs(), HIRES_NAMES)
        # Picking a checkpoint sets the size it was trained at (512 for SD 1.x, 1024 for SDXL, ...).
        self.checkpoint.input(lambda title: [self.backend.native_size(title)] * 2, inputs=self.checkpoint,
                              outputs=[self.width, self.height], api_name=False, queue=False)

    def _generate(self, *values, request: gr.Request, scripts=None):
        base, hires = values[:len(BASE_NAMES)], values[len(BASE_NAMES):]
        return self._run(*base, request, scripts=scripts, hires=hires)

    @user_errors
    def _run(self, checkpoint, prompt, negative_prompt, sampler, steps, cfg_scale, width, height, seed,
             batch_count, batch_size, scheduler, seed_extra, subseed, subseed_strength, seed_resize_from_w,
             seed_resize_from_h, request: gr.Request, scripts=None, hires=()):
        """Generate's handler; `hires`: the Hires. fix values (none: off)."""
        job = self.backend.new_job("txt2img", owner_of(request), queue_user=queue_user_of(request))
        txt2img_request = Txt2ImgRequest(
            prompt=prompt, negative_prompt=negative_prompt, sampler=sampler, scheduler=scheduler, steps=steps,
            cfg_scale=cfg_scale,
            width=width, height=height, seed=-1 if seed is None else seed, batch_count=batch_count,
            batch_size=batch_size, checkpoint=checkpoint or None,
            **variation_fields(seed_extra, subseed, subseed_strength, seed_resize_from_w, seed_resize_from_h),
            **(HiresControls.request_fields(list(hires)) if hires else {}))
        yield from self.run_job(TXT2IMG, txt2img_request, job, scripts)

