"""The "Refiner" controls of txt2img and img2img (A1111's labels): another checkpoint takes over the sampling at
"Switch at" (a fraction of the schedule). modules/capabilities/refiner.py does the work."""
from __future__ import annotations

import gradio as gr

from modules.capabilities.refiner import DEFAULT_SWITCH_AT
from modules.ui.components import Slider

# The handler's values, in order; also their names in the Gradio API (A1111's API names).
NAMES = ["enable_refiner", "refiner_checkpoint", "refiner_switch_at"]
NONE = "None"  # A1111's first choice: no refiner


class RefinerControls:
    def build(self, backend, tab: str) -> None:
        with gr.Accordion("Refiner", open=False, elem_id=f"{tab}_refiner"):
            self.enable = gr.Checkbox(False, label="Refiner: switch to another checkpoint part-way",
                                      elem_id=f"{tab}_enable_refiner")
            with gr.Row():
                self.checkpoint = gr.Dropdown([NONE, *backend.checkpoint_titles()], value=NONE, label="Checkpoint",
                                              elem_id=f"{tab}_refiner_checkpoint", allow_custom_value=True, scale=3)
                self.refresh = gr.Button("↻", elem_id=f"{tab}_refiner_refresh", scale=0, min_width=48)
                self.switch_at = Slider(0.01, 1.0, value=DEFAULT_SWITCH_AT, step=0.01, label="Switch at",
                                        elem_id=f"{tab}_refiner_switch_at",
                                        info="fraction of the schedule where the refiner takes over; 1 never")
        self.refresh.click(lambda current: gr.Dropdown(choices=[NONE, *backend.refresh_checkpoints()], value=current),
                           inputs=self.checkpoint, outputs=self.checkpoint, api_name=False, show_progress="hidden")

    def inputs(self) -> list:
        return [self.enable, self.checkpoint, self.switch_at]

    @staticmethod
    def request_fields(values: list) -> dict:
        """The request keywords of inputs()' values: none unless the refiner is on with a checkpoint picked."""
        fields = dict(zip(NAMES, values))
        if not fields.pop("enable_refiner") or fields["refiner_checkpoint"] in (None, "", NONE):
            return {}
        return fields
