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
from modules.ui.refiner_controls import NAMES as REFINER_NAMES
from modules.ui.refiner_controls import RefinerControls


class Txt2ImgTab(GenerationTab):
    """Holds the tab's components so other tabs (PNG Info) can send parameters to them."""

    tab = "txt2img"

    def build(self) -> None:
        self.build_modules()
        self.build_prompt_row()
        with gr.Row():
            with gr.Column():
                self.build_sampling()
                self.build_restore_faces()
                self.hires = HiresControls()
                self.hires.build(self.backend.manager)
                self.refiner = RefinerControls()
                self.refiner.build(self.backend, self.tab)
                self.build_seed_and_scripts()
            with gr.Column():
                self.build_output()
                self.send_to_img2img = gr.Button("Send to img2img", elem_id="txt2img_send_to_img2img", size="sm")
        self.selected = gr.State(0)  # the gallery's picked picture, for "Send to img2img"
        self.gallery.select(selected_index, outputs=self.selected, api_name=False, queue=False)
        self.wire(self._generate, [*self.hires.inputs(), *self.refiner.inputs(), self.distilled_cfg_scale, self.modules,
                                   self.restore_faces],
                  [*HIRES_NAMES, *REFINER_NAMES, "distilled_cfg_scale", "forge_additional_modules", "restore_faces"])
        # Picking a checkpoint sets what its family starts from: the size it was trained at (512 for SD 1.x,
        # 1024 for SDXL, SD3, FLUX), its samplers, steps (4 for FLUX.1 schnell) and CFG scale (1 for FLUX).
        self.checkpoint.input(self._checkpoint_picked, inputs=[self.checkpoint, self.sampler],
                              outputs=[self.width, self.height, *self.family_outputs()], api_name=False, queue=False)

    def build_sampling(self, defaults: dict | None = None) -> None:
        super().build_sampling(self.backend.checkpoint_defaults(self.checkpoint.value))  # the shown one's family

    def _checkpoint_picked(self, title, sampler):
        size = self.backend.checkpoint_defaults(title)["size"]
        return [size, size, *self.family_values(title, sampler)]

    def _generate(self, *values, request: gr.Request, scripts=None):
        base, own = values[:len(BASE_NAMES)], values[len(BASE_NAMES):]
        hires, rest = own[:len(HIRES_NAMES)], own[len(HIRES_NAMES):]
        refiner, flow = rest[:len(REFINER_NAMES)], rest[len(REFINER_NAMES):]
        # absent when a caller (a test, a script) sends fewer values
        distilled, modules, restore_faces = (*flow, 3.5, (), False)[:3]
        return self._run(*base[:-1], request, scripts=scripts, hires=hires, refiner=refiner, styles=base[-1],
                         distilled_cfg_scale=distilled, modules=modules, restore_faces=restore_faces)

    @user_errors
    def _run(self, checkpoint, prompt, negative_prompt, sampler, steps, cfg_scale, width, height, seed,
             batch_count, batch_size, scheduler, seed_extra, subseed, subseed_strength, seed_resize_from_w,
             seed_resize_from_h, request: gr.Request, scripts=None, hires=(), refiner=(), styles=None,
             distilled_cfg_scale=3.5, modules=(), restore_faces=False):
        """Generate's handler; `hires`: the Hires. fix values (none: off); `refiner`: the Refiner's (none: off);
        `styles`: the picked style names; `distilled_cfg_scale` and `modules`: FLUX's guidance, Forge's
        component files; `restore_faces`: the Restore faces checkbox."""
        job = self.backend.new_job("txt2img", owner_of(request), queue_user=queue_user_of(request))
        txt2img_request = Txt2ImgRequest(
            prompt=prompt, negative_prompt=negative_prompt, sampler=sampler, scheduler=scheduler, steps=steps,
            cfg_scale=cfg_scale,
            width=width, height=height, seed=-1 if seed is None else seed, batch_count=batch_count,
            batch_size=batch_size, checkpoint=checkpoint or None, styles=list(styles or []),
            distilled_cfg_scale=distilled_cfg_scale, forge_additional_modules=tuple(modules or ()),
            restore_faces=bool(restore_faces),
            **variation_fields(seed_extra, subseed, subseed_strength, seed_resize_from_w, seed_resize_from_h),
            **(HiresControls.request_fields(list(hires)) if hires else {}),
            **(RefinerControls.request_fields(list(refiner)) if refiner else {}))
        yield from self.run_job(TXT2IMG, txt2img_request, job, scripts)

