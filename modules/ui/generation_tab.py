"""What the txt2img and img2img tabs share (A1111's layout and names): the prompt row with Generate,
Interrupt and Skip; sampler, steps, size, batch, CFG and seed; the scripts; the output column; and the
handler's loop that shows progress and previews until the job is done, then its images."""
from __future__ import annotations

import threading
import time

import gradio as gr

from modules.backend import Backend
from modules.errors import InvalidRequest
from modules.generation.samplers import AUTOMATIC, sampler_names, schedule_labels, schedule_labels_for
from modules.ui.common import error_html, info_html, owner_of, progress_html
from modules.ui.components import Slider
from modules.ui.errors import user_errors
from modules.ui.extra_networks import ExtraNetworksPanel
from modules.ui.script_controls import ScriptControls
from modules.ui.style_controls import StyleControls

# Where a face restorer goes (A1111's folders; only GFPGAN files run here, modules/models/face_restorer_files.py).
NO_FACE_RESTORER = ("No face restoration model: put a GFPGAN file (GFPGANv1.4.pth) into models/GFPGAN and "
                    "restart; CodeFormer (models/Codeformer) is not supported yet")
POLL_SECONDS = 0.25
KEEPALIVE_SECONDS = 1.0
# The handler's values in order (before the tab's own); also their names in the Gradio API.
BASE_NAMES = ["checkpoint", "prompt", "negative_prompt", "sampler", "steps", "cfg_scale", "width", "height", "seed",
              "batch_count", "batch_size", "scheduler", "seed_extra", "subseed", "subseed_strength",
              "seed_resize_from_w", "seed_resize_from_h", "styles"]


class GenerationTab:
    """Components are attributes (self.prompt, self.seed ...) so other tabs can send values to them;
    every elem_id starts with the tab's name (txt2img_prompt, img2img_prompt ...)."""

    tab = ""  # "txt2img" / "img2img": elem_id prefix and the scripts' tab

    def __init__(self, backend: Backend, checkpoint: gr.Dropdown, modules: gr.Dropdown | None = None):
        self.backend = backend
        self.checkpoint = checkpoint
        # Component files for transformer-only checkpoints (checkpoint_picker.build_component_picker)
        self.modules = modules

    def build_modules(self) -> None:
        """The component picker where the tab builds this (one made with render=False), or none (tests)."""
        if self.modules is None:  # built without the picker: no component files
            self.modules = gr.State([])
        elif not self.modules.is_rendered:
            self.modules.render()

    def build_prompt_row(self) -> None:
        t = self.tab
        with gr.Row():
            with gr.Column(scale=6):
                self.prompt = gr.Textbox(label="Prompt", lines=3, elem_id=f"{t}_prompt",
                                         placeholder="Prompt (e.g. a red circle on a white background)")
                self.negative_prompt = gr.Textbox(label="Negative prompt", lines=2, elem_id=f"{t}_neg_prompt")
            with gr.Column(scale=1, min_width=180):
                self.generate = gr.Button("Generate", variant="primary", elem_id=f"{t}_generate")
                with gr.Row():
                    self.interrupt = gr.Button("Interrupt", elem_id=f"{t}_interrupt", size="sm")
                    self.skip = gr.Button("Skip", elem_id=f"{t}_skip", size="sm")
        self.style_controls = StyleControls(self.backend, t)
        self.style_controls.build()
        self.styles = self.style_controls.dropdown
        self.extra_networks = ExtraNetworksPanel(self.backend, t)  # LoRA and embedding cards, under the prompt
        self.extra_networks.build()

    def build_sampling(self, defaults: dict | None = None) -> None:
        """`defaults`: Backend.checkpoint_defaults of the checkpoint shown (its family's samplers, steps, CFG)."""
        t = self.tab
        samplers = (defaults or {}).get("samplers") or sampler_names()
        with gr.Row():
            self.sampler = gr.Dropdown(samplers, value="Euler a" if "Euler a" in samplers else samplers[0],
                                       label="Sampling method", elem_id=f"{t}_sampler",
                                       allow_custom_value=True, scale=3)  # aliases ("k_euler_a") too
            # A1111 ≥ 1.9's "Schedule type"; its choices follow the sampler (validated by the request anyway).
            self.scheduler = gr.Dropdown(schedule_labels(), value=AUTOMATIC, label="Schedule type",
                                         elem_id=f"{t}_scheduler", scale=2)
        self.steps = Slider(1, 150, value=(defaults or {}).get("steps", 20), step=1, label="Sampling steps",
                            elem_id=f"{t}_steps")
        with gr.Row():
            side = self.backend.native_size(self.checkpoint.value)
            self.width = Slider(8, 2048, value=side, step=8, label="Width", elem_id=f"{t}_width")
            self.height = Slider(8, 2048, value=side, step=8, label="Height", elem_id=f"{t}_height")
        with gr.Row():
            self.batch_count = Slider(1, 100, value=1, step=1, label="Batch count", elem_id=f"{t}_batch_count")
            self.batch_size = Slider(1, 8, value=1, step=1, label="Batch size", elem_id=f"{t}_batch_size")
        self.cfg_scale = Slider(0, 30, value=(defaults or {}).get("cfg_scale", 7), step=0.5, label="CFG Scale",
                                elem_id=f"{t}_cfg_scale")
        self.distilled_cfg_scale = gr.Slider(0, 30, value=3.5, step=0.1, label="Distilled CFG Scale",
                                             visible=bool((defaults or {}).get("distilled")),
                                             elem_id=f"{t}_distilled_cfg_scale")

    def family_values(self, title, sampler) -> list:
        """What picking checkpoint `title` sets (family_outputs): its family's samplers (keeping the picked one
        where offered), steps, CFG scale (1 for FLUX), the Distilled CFG Scale shown for FLUX.1 dev only, and
        the component files listed afresh."""
        found = self.backend.checkpoint_defaults(title)
        samplers = found["samplers"]
        return [gr.Dropdown(choices=samplers, value=sampler if sampler in samplers else samplers[0]),
                found["steps"], found["cfg_scale"], gr.Slider(visible=found["distilled"]),
                gr.Dropdown(choices=self.backend.component_file_names())]

    def family_outputs(self) -> list:
        return [self.sampler, self.steps, self.cfg_scale, self.distilled_cfg_scale, self.modules]

    def build_restore_faces(self) -> None:
        """A1111's Restore faces (the request's restore_faces, as the API's): usable when models/GFPGAN holds a
        face restorer; otherwise shown disabled, saying where a model file goes."""
        available = self.backend.manager.face_restorer_files.available()
        self.restore_faces = gr.Checkbox(False, label="Restore faces", elem_id=f"{self.tab}_restore_faces",
                                         interactive=bool(available),
                                         info=f"with {available[0]}" if available else NO_FACE_RESTORER)

    def build_seed_and_scripts(self) -> None:
        t = self.tab
        with gr.Row():
            self.seed = gr.Number(value=-1, precision=0, label="Seed (-1: random)", elem_id=f"{t}_seed", scale=4)
            self.random_seed = gr.Button("⚄", elem_id=f"{t}_random_seed", scale=1, min_width=40)
            self.reuse_seed = gr.Button("♻", elem_id=f"{t}_reuse_seed", scale=1, min_width=40)
            self.seed_extra = gr.Checkbox(False, label="Extra", elem_id=f"{t}_subseed_show", scale=1, min_width=80)
        # A1111's variation seed: hidden until Extra is ticked, and off while it is not (variation_fields).
        with gr.Group(visible=False, elem_id=f"{t}_seed_extras") as self.seed_extras:
            with gr.Row():
                self.subseed = gr.Number(value=-1, precision=0, label="Variation seed", elem_id=f"{t}_subseed")
                self.subseed_strength = Slider(0, 1, value=0, step=0.01, label="Variation strength",
                                               elem_id=f"{t}_subseed_strength")
            with gr.Row():
                self.seed_resize_from_w = Slider(0, 2048, value=0, step=8, label="Resize seed from width",
                                                 elem_id=f"{t}_seed_resize_from_w")
                self.seed_resize_from_h = Slider(0, 2048, value=0, step=8, label="Resize seed from height",
                                                 elem_id=f"{t}_seed_resize_from_h")
        self.scripts = ScriptControls(self.backend.extensions, t)  # extensions' scripts
        self.scripts.build()

    def build_output(self) -> None:
        t = self.tab
        self.progress = gr.HTML(elem_id=f"{t}_progress")
        self.gallery = gr.Gallery(label="Output", columns=2, format="png", height=520, object_fit="contain",
                                  elem_id=f"{t}_gallery", interactive=False)
        self.message = gr.HTML(elem_id=f"{t}_message")
        self.infotext = gr.Textbox(label="Generation parameters", lines=3, interactive=False,
                                   elem_id=f"{t}_infotext", buttons=["copy"])
        self.last_seeds = gr.State([])

    def base_inputs(self) -> list:
        return [self.checkpoint, self.prompt, self.negative_prompt, self.sampler, self.steps, self.cfg_scale,
                self.width, self.height, self.seed, self.batch_count, self.batch_size, self.scheduler,
                self.seed_extra, self.subseed, self.subseed_strength, self.seed_resize_from_w, self.seed_resize_from_h,
                self.styles]

    def outputs(self) -> list:
        return [self.gallery, self.progress, self.message, self.infotext, self.last_seeds]

    def wire(self, handler, own_inputs: list, own_names: list[str]) -> None:
        """Generate (and Enter in the prompt) run `handler(*base values, *own values, request=, scripts=)`."""
        run = self.scripts.handler(handler, BASE_NAMES + own_names)
        inputs = self.base_inputs() + own_inputs + self.scripts.inputs()
        self.generate.click(run, inputs=inputs, outputs=self.outputs(), api_name=self.tab, concurrency_limit=None,
                            show_progress="hidden")
        self.prompt.submit(run, inputs=inputs, outputs=self.outputs(), api_name=False, concurrency_limit=None,
                           show_progress="hidden")
        self.style_controls.wire(self.prompt, self.negative_prompt)
        self.extra_networks.wire(self.gallery, self.prompt, self.negative_prompt)
        self.interrupt.click(self._interrupt, inputs=None, outputs=None, api_name=False, queue=False)
        self.skip.click(self._skip, inputs=None, outputs=None, api_name=False, queue=False)
        self.sampler.change(_schedules_of, inputs=[self.sampler, self.scheduler], outputs=self.scheduler,
                            api_name=False, queue=False, show_progress="hidden")
        self.seed_extra.change(lambda shown: gr.Group(visible=shown), inputs=self.seed_extra,
                               outputs=self.seed_extras, api_name=False, queue=False, show_progress="hidden")
        self.random_seed.click(lambda: -1, outputs=self.seed, api_name=False, queue=False)
        self.reuse_seed.click(lambda seeds: seeds[0] if seeds else -1, inputs=self.last_seeds, outputs=self.seed,
                              api_name=False, queue=False)

    def run_job(self, capability, request, job, scripts):
        """Runs the job on a worker thread, yielding progress until it ends, then its images (a generator)."""
        outcome: dict = {}

        def work():
            try:
                outcome["result"] = self.backend.run(capability, request, job, scripts)
            except Exception as e:  # noqa: BLE001 - raised below, in the handler's thread (a toast)
                outcome["error"] = e

        worker = threading.Thread(target=work, name=f"{self.tab}-{job.id[:8]}", daemon=True)
        worker.start()
        try:
            yield from self._progress_until_done(job, worker)
        finally:
            # Gradio closes this generator when the user cancels or the browser goes away (reloaded or
            # closed tab: its event stream ends, and the next yield, within a second, is the last): the job
            # leaves the queue or stops inside its current step, so the device goes to the next job.
            if job.active:
                job.cancel()
        if "error" in outcome:
            yield {self.progress: "", self.message: ""}
            raise outcome["error"]
        yield self._shown(outcome["result"], job)

    def _shown(self, result, job) -> dict:
        note = ""
        if job.state == "interrupted":
            note = info_html("Interrupted: kept the images finished so far." if result.images else
                             "Interrupted before the first step ended: no image.")
        if result.save_errors:
            note += error_html("; ".join(result.save_errors))
        captions = [(image, "Grid" if n < result.index_of_first_image else f"Seed {seed}")
                    for n, (image, seed) in enumerate(zip(result.images, result.seeds))]
        return {self.gallery: captions, self.progress: "", self.message: note,
                self.infotext: result.infotexts[0] if result.infotexts else "", self.last_seeds: result.seeds}

    def _progress_until_done(self, job, worker: threading.Thread):
        # A first answer at once: Gradio can only cancel (close) a generator it has received a value from.
        yield {self.progress: progress_html(job), self.message: ""}
        shown, last_yield = (-1, -1), time.monotonic()
        while worker.is_alive():
            worker.join(POLL_SECONDS)
            if worker.is_alive():
                ahead = self.backend.device_line.ahead_of(job.id) if job.state == "queued" else 0
                state = (job.preview_version, round(job.progress * 100), ahead)
                if state != shown:
                    shown, last_yield = state, time.monotonic()
                    update = {self.progress: progress_html(job, ahead), self.message: ""}
                    if job.preview is not None:
                        update[self.gallery] = [job.preview]
                    yield update
                elif time.monotonic() - last_yield >= KEEPALIVE_SECONDS:
                    # Nothing new, but Gradio can only close a generator that yields: a departed client
                    # is noticed here within a second even while the job waits in the queue.
                    last_yield = time.monotonic()
                    yield gr.skip()  # every output unchanged

    @user_errors
    def _interrupt(self, request: gr.Request):
        self.backend.jobs.interrupt(owner_of(request))

    @user_errors
    def _skip(self, request: gr.Request):
        self.backend.jobs.skip(owner_of(request))


def selected_index(event: gr.SelectData) -> int:
    """The picture picked in a gallery (for "Send to img2img")."""
    return event.index


def _schedules_of(sampler: str, schedule: str):
    """The schedule dropdown for `sampler`: its schedule types; the choice kept where it still applies."""
    try:
        choices = schedule_labels_for(sampler)
    except InvalidRequest:  # a name being typed: leave the dropdown as it is
        return gr.skip()
    return gr.Dropdown(choices=choices, value=schedule if schedule in choices else AUTOMATIC)


def variation_fields(extra: bool, subseed, strength, resize_w, resize_h) -> dict:
    """The request's variation seed fields from the controls: all off unless Extra is ticked (as A1111)."""
    if not extra:
        return {}
    return {"subseed": -1 if subseed is None else subseed, "subseed_strength": strength or 0,
            "seed_resize_from_w": resize_w or 0, "seed_resize_from_h": resize_h or 0}
