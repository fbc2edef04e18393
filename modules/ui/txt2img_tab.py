"""The txt2img tab: layout and wiring only. A click builds a Txt2ImgRequest and hands it to the runner
(Backend.txt2img); the handler answers {component: value}, and errors leave as toasts (@user_errors)."""
from __future__ import annotations

import threading
import time

import gradio as gr

from modules.backend import Backend
from modules.capabilities.txt2img import Txt2ImgRequest
from modules.generation.samplers import sampler_names
from modules.ui.common import error_html, info_html, owner_of, progress_html, queue_user_of
from modules.ui.components import Slider
from modules.ui.errors import user_errors
from modules.ui.script_controls import ScriptControls

POLL_SECONDS = 0.25
KEEPALIVE_SECONDS = 1.0


class Txt2ImgTab:
    """Holds the tab's components so other tabs (PNG Info) can send parameters to them."""

    def __init__(self, backend: Backend, checkpoint: gr.Dropdown):
        self.backend = backend
        self.checkpoint = checkpoint

    def build(self) -> None:
        with gr.Row():
            with gr.Column(scale=6):
                self.prompt = gr.Textbox(label="Prompt", lines=3, placeholder="Prompt (e.g. a red circle on a white background)",
                                         elem_id="txt2img_prompt")
                self.negative_prompt = gr.Textbox(label="Negative prompt", lines=2, elem_id="txt2img_neg_prompt")
            with gr.Column(scale=1, min_width=180):
                self.generate = gr.Button("Generate", variant="primary", elem_id="txt2img_generate")
                with gr.Row():
                    self.interrupt = gr.Button("Interrupt", elem_id="txt2img_interrupt", size="sm")
                    self.skip = gr.Button("Skip", elem_id="txt2img_skip", size="sm")
        with gr.Row():
            with gr.Column():
                self.sampler = gr.Dropdown(sampler_names(), value="Euler a", label="Sampling method", elem_id="txt2img_sampler",
                                           allow_custom_value=True)  # aliases ("k_euler_a") too; validated by the request
                self.steps = Slider(1, 150, value=20, step=1, label="Sampling steps", elem_id="txt2img_steps")
                with gr.Row():
                    side = self.backend.native_size(self.checkpoint.value)
                    self.width = Slider(8, 2048, value=side, step=8, label="Width", elem_id="txt2img_width")
                    self.height = Slider(8, 2048, value=side, step=8, label="Height", elem_id="txt2img_height")
                with gr.Row():
                    self.batch_count = Slider(1, 100, value=1, step=1, label="Batch count", elem_id="txt2img_batch_count")
                    self.batch_size = Slider(1, 8, value=1, step=1, label="Batch size", elem_id="txt2img_batch_size")
                self.cfg_scale = Slider(0, 30, value=7, step=0.5, label="CFG Scale", elem_id="txt2img_cfg_scale")
                with gr.Row():
                    self.seed = gr.Number(value=-1, precision=0, label="Seed (-1: random)", elem_id="txt2img_seed", scale=4)
                    self.random_seed = gr.Button("⚄", elem_id="txt2img_random_seed", scale=1, min_width=40)
                    self.reuse_seed = gr.Button("♻", elem_id="txt2img_reuse_seed", scale=1, min_width=40)
                self.scripts = ScriptControls(self.backend.extensions, "txt2img")  # extensions' scripts
                self.scripts.build()
            with gr.Column():
                self.progress = gr.HTML(elem_id="txt2img_progress")
                self.gallery = gr.Gallery(label="Output", columns=2, format="png", height=520, object_fit="contain",
                                          elem_id="txt2img_gallery", interactive=False)
                self.message = gr.HTML(elem_id="txt2img_message")
                self.infotext = gr.Textbox(label="Generation parameters", lines=3, interactive=False,
                                           elem_id="txt2img_infotext", buttons=["copy"])
        self.last_seeds = gr.State([])
        self._wire()

    def inputs(self) -> list:
        return [self.checkpoint, self.prompt, self.negative_prompt, self.sampler, self.steps, self.cfg_scale,
                self.width, self.height, self.seed, self.batch_count, self.batch_size]

    def _wire(self) -> None:
        outputs = [self.gallery, self.progress, self.message, self.infotext, self.last_seeds]
        run = self.scripts.handler(self._run, ["checkpoint", "prompt", "negative_prompt", "sampler", "steps",
                                               "cfg_scale", "width", "height", "seed", "batch_count", "batch_size"])
        self.generate.click(run, inputs=self.inputs() + self.scripts.inputs(), outputs=outputs, api_name="txt2img",
                            concurrency_limit=None, show_progress="hidden")
        self.prompt.submit(run, inputs=self.inputs() + self.scripts.inputs(), outputs=outputs, api_name=False,
                           concurrency_limit=None, show_progress="hidden")
        self.interrupt.click(self._interrupt, inputs=None, outputs=None, api_name=False, queue=False)
        self.skip.click(self._skip, inputs=None, outputs=None, api_name=False, queue=False)
        # Picking a checkpoint sets the size it was trained at (512 for SD 1.x, 1024 for SDXL, ...).
        self.checkpoint.input(lambda title: [self.backend.native_size(title)] * 2, inputs=self.checkpoint,
                              outputs=[self.width, self.height], api_name=False, queue=False)
        self.random_seed.click(lambda: -1, outputs=self.seed, api_name=False, queue=False)
        self.reuse_seed.click(lambda seeds: seeds[0] if seeds else -1, inputs=self.last_seeds, outputs=self.seed,
                              api_name=False, queue=False)

    @user_errors
    def _run(self, checkpoint, prompt, negative_prompt, sampler, steps, cfg_scale, width, height, seed,
             batch_count, batch_size, request: gr.Request, scripts=None):
        job = self.backend.new_job("txt2img", owner_of(request), queue_user=queue_user_of(request))
        txt2img_request = Txt2ImgRequest(
            prompt=prompt, negative_prompt=negative_prompt, sampler=sampler, steps=steps, cfg_scale=cfg_scale,
            width=width, height=height, seed=-1 if seed is None else seed, batch_count=batch_count,
            batch_size=batch_size, checkpoint=checkpoint or None)
        outcome: dict = {}

        def work():
            try:
                outcome["result"] = self.backend.txt2img(txt2img_request, job, scripts)
            except Exception as e:  # noqa: BLE001 - raised below, in the handler's thread (a toast)
                outcome["error"] = e

        worker = threading.Thread(target=work, name=f"txt2img-{job.id[:8]}", daemon=True)
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
        result = outcome["result"]
        note = ""
        if job.state == "interrupted":
            note = info_html("Interrupted: kept the images finished so far." if result.images else
                             "Interrupted before the first step ended: no image.")
        if result.save_errors:
            note += error_html("; ".join(result.save_errors))
        yield {self.gallery: [(image, f"Seed {seed}") for image, seed in zip(result.images, result.seeds)],
               self.progress: "", self.message: note,
               self.infotext: result.infotexts[0] if result.infotexts else "", self.last_seeds: result.seeds}

    def _progress_until_done(self, job, worker: threading.Thread):
        # A first answer at once: Gradio can only cancel (close) a generator it has received a value from.
        yield {self.progress: progress_html(job), self.message: ""}
        shown, last_yield = (-1, -1), time.monotonic()
        while worker.is_alive():
            worker.join(POLL_SECONDS)
            if worker.is_alive():
                ahead = self.backend.manager.device_lock.ahead_of(job.id) if job.state == "queued" else 0
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
