"""What the Latent Explorer's panels share: running a job for a click, the image upload that hands over
the file unopened, latents as text, and the live-decoding event settings."""
from __future__ import annotations

import json

import gradio as gr

from modules.ui.common import owner_of, queue_user_of

# Live decoding: while a decode runs, further slider moves collapse into one follow-up with the latest
# values (always_last), one at a time per panel, so stale positions are dropped rather than queued.
LIVE = dict(trigger_mode="always_last", concurrency_limit=1, show_progress="hidden", api_name=False)
# Small VAEs decode 32 px images: show them large, with crisp pixels.
STYLE = """<style>
#latent_image img, #latent_reconstruction img, #latent_input img, #latent_sample img
  { width: 100% !important; height: 100% !important; object-fit: contain; image-rendering: pixelated; }
</style>"""


def run_job(backend, capability, request, http: gr.Request | None):
    """One job of a latent capability for the user behind this click (validate, model, run, errors)."""
    return backend.runner.run(capability, request, owner=owner_of(http), queue_user=queue_user_of(http))


def latent_text(latent) -> str:
    return json.dumps([round(float(v), 4) for v in latent])
