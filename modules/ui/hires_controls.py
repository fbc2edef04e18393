"""txt2img's "Hires. fix" controls (A1111's labels): a second pass at a larger size, through img2img."""
from __future__ import annotations

import gradio as gr

from modules.capabilities.txt2img.hires import SAME_SAMPLER, SAME_SCHEDULER, upscaler_choices
from modules.generation.samplers import sampler_names, schedule_labels
from modules.ui.components import Slider

# The handler's values, in order; also their names in the Gradio API (A1111's API names).
NAMES = ["enable_hr", "hr_upscaler", "hr_second_pass_steps", "denoising_strength", "hr_scale", "hr_resize_x",
         "hr_resize_y", "hr_sampler_name", "hr_scheduler", "hr_prompt", "hr_negative_prompt"]


class HiresControls:
    def build(self, manager) -> None:
        with gr.Accordion("Hires. fix", open=False, elem_id="txt2img_hires_fix"):
            self.enable = gr.Checkbox(False, label="Hires. fix: upscale, then a second pass at the larger size",
                                      elem_id="txt2img_enable_hr")
            with gr.Row():
                self.upscaler = gr.Dropdown(upscaler_choices(manager), value="Latent", label="Upscaler",
                                            elem_id="txt2img_hr_upscaler", allow_custom_value=True)
                self.steps = Slider(0, 150, value=0, step=1, label="Hires steps (0: same as sampling steps)",
                                    elem_id="txt2img_hires_steps")
                self.denoising = Slider(0, 1, value=0.7, step=0.01, label="Denoising strength",
                                        elem_id="txt2img_denoising_strength")
            with gr.Row():
                self.scale = Slider(1, 4, value=2, step=0.05, label="Upscale by", elem_id="txt2img_hr_scale")
                self.resize_x = Slider(0, 2048, value=0, step=8, label="Resize width to", elem_id="txt2img_hr_resize_x")
                self.resize_y = Slider(0, 2048, value=0, step=8, label="Resize height to",
                                       elem_id="txt2img_hr_resize_y")
            with gr.Row():
                self.sampler = gr.Dropdown([SAME_SAMPLER, *sampler_names()], value=SAME_SAMPLER,
                                           label="Hires sampling method", elem_id="hr_sampler")
                # The request checks that the hires sampler takes the schedule type (a toast naming hr_scheduler).
                self.scheduler = gr.Dropdown([SAME_SCHEDULER, *schedule_labels()], value=SAME_SCHEDULER,
                                             label="Hires schedule type", elem_id="hr_scheduler")
            with gr.Row():
                self.prompt = gr.Textbox("", label="Hires prompt", lines=2, elem_id="hires_prompt",
                                         placeholder="(empty: the prompt above)")
                self.negative_prompt = gr.Textbox("", label="Hires negative prompt", lines=2,
                                                  elem_id="hires_neg_prompt",
                                                  placeholder="(empty: the negative prompt above)")

    def inputs(self) -> list:
        return [self.enable, self.upscaler, self.steps, self.denoising, self.scale, self.resize_x, self.resize_y,
                self.sampler, self.scheduler, self.prompt, self.negative_prompt]

    @staticmethod
    def request_fields(values: list) -> dict:
        """The Txt2ImgRequest keywords of inputs()' values."""
        fields = dict(zip(NAMES, values))
        if fields["hr_sampler_name"] == SAME_SAMPLER:
            fields["hr_sampler_name"] = ""
        if fields["hr_scheduler"] == SAME_SCHEDULER:
            fields["hr_scheduler"] = ""
        return fields
