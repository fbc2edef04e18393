"""Small pieces the tabs share: progress bar and message HTML, and the user/session a click comes from."""
from __future__ import annotations

import html

import gradio as gr

from modules import owners
from modules.jobs import Job
from modules.public_paths import scrub
from modules.security.ui_session import session_of
from modules.ui.extra_network_cards import CSS as EXTRA_NETWORKS_CSS


def login_name(request: gr.Request | None) -> str | None:
    """The logged-in user's name (Gradio checked the login); None when anonymous."""
    return getattr(request, "username", None) or None if request is not None else None


def owner_of(request: gr.Request | None) -> str:
    """Whose job this is (modules/owners.py): the logged-in user, else the browser session the server issued
    a cookie to; never Gradio's session_hash, which the client picks. Without a valid session cookie (a raw
    client that keeps none), an owner nobody else can ever have."""
    name = login_name(request)
    if name is not None:
        return owners.user(name)
    raw = getattr(request, "request", None) if request is not None else None
    try:
        cookies = raw.cookies if raw is not None else dict(getattr(request, "cookies", None) or {})
    except Exception:  # noqa: BLE001 - a request rebuilt without cookies: treated as having none
        cookies = {}
    session = session_of(cookies)
    return owners.ui_session(session) if session else owners.nobody_else()


def queue_user_of(request: gr.Request | None) -> str:
    """Who waits in the device's line for this click's job: the logged-in user, else the client's address
    (every browser session of one address shares its --queue-per-user share and its turns)."""
    client = getattr(request, "client", None) if request is not None else None
    return owners.queue_user(owner_of(request) if login_name(request) else None, getattr(client, "host", None))


def error_html(message: str) -> str:
    return f'<div class="zoo-error" role="alert">⚠ {html.escape(scrub(message))}</div>'


def info_html(message: str) -> str:
    return f'<div class="zoo-info">{html.escape(scrub(message))}</div>'


def progress_html(job: Job, queue_position: int = 0) -> str:
    if job.state == "queued":
        text = f"Waiting for the device… ({queue_position} ahead)" if queue_position else "Waiting for the device…"
        percent = 0
    else:
        percent = round(job.progress * 100)
        text = f"{percent}% · step {job.step}/{job.steps}"
        if job.batch_count > 1:
            text += f" · batch {job.batch_index + 1}/{job.batch_count}"
        eta = job.eta_seconds
        if job.interrupt_requested:  # the images sampled so far are still decoded: a second press drops them
            text += " · stopping (press Interrupt again to drop the images not decoded yet)"
        elif eta is not None:
            speed = job.speed_text
            text += (f" · {speed}" if speed else "") + f" · ETA {eta:.0f} s"
    bar = (f'<div class="zoo-progress" data-progress="{percent}"><div class="zoo-progress-bar" '
           f'style="width:{percent}%"></div><span>{html.escape(text)}</span></div>')
    if job.note and job.active and job.eta_seconds is None:  # until the first step gives a real ETA
        bar += f'<div class="zoo-info zoo-job-note">{html.escape(job.note)}</div>'
    return bar


CSS = EXTRA_NETWORKS_CSS + """
.zoo-error { color: #b00020; background: #fde7ea; border-radius: 6px; padding: 8px 12px; font-weight: 600; }
.zoo-info { color: #444; background: #eef3fb; border-radius: 6px; padding: 8px 12px; }
.zoo-progress { position: relative; height: 24px; background: #e8e8e8; border-radius: 6px; overflow: hidden; }
.zoo-progress-bar { position: absolute; left: 0; top: 0; bottom: 0; background: #f97316; transition: width .2s; }
.zoo-progress span { position: relative; padding-left: 8px; line-height: 24px; font-size: 13px; }
.zoo-pnginfo pre { white-space: pre-wrap; word-break: break-word; margin: 0; }
.zoo-pnginfo { width: 100%; table-layout: fixed; }
.zoo-pnginfo th { width: 8em; text-align: left; vertical-align: top; }
#txt2img_generate, #img2img_generate { min-height: 72px; font-size: 1.1em; }
/* The zoo's pictures are small (32 px): enlarged, they show their pixels instead of a blur. */
img { image-rendering: pixelated; }
/* Galleries: a caption goes under its picture, never over its bottom rows; txt2img shows every row of a
   batch (the page scrolls, not a 520-px window that cuts the second row). */
.thumbnail-item:has(> .caption-label) { display: flex !important; flex-direction: column !important;
  aspect-ratio: auto !important; }
.thumbnail-item:has(> .caption-label) > img { aspect-ratio: 1 !important; height: auto !important; flex: none; }
.thumbnail-item > .caption-label { position: static !important; max-width: 100% !important; text-align: center;
  border: none !important; border-radius: 0 !important; }
#txt2img_gallery, #txt2img_gallery .grid-wrap, #img2img_gallery, #img2img_gallery .grid-wrap
  { height: auto !important; max-height: none !important; }
.gallery-container > .preview { background: var(--block-background-fill) !important; }  /* no thumbnails through it */
/* PNG Info: the uploaded picture at a useful size, whole. */
#pnginfo_image img, #img2img_image img, #img_inpaint_base img, #img_inpaint_mask img
  { width: 100% !important; height: 100% !important; object-fit: contain; }
/* Message areas never show Gradio's own timer ("processing | 0.4/1.2s"): they say what happened in words,
   and a long job has its progress bar. */
[id$="_message"] > [data-testid="status-tracker"], [id$="_notice"] > [data-testid="status-tracker"],
[id$="_note"] > [data-testid="status-tracker"], [id$="_progress"] > [data-testid="status-tracker"]
  { display: none !important; }
/* Models table: headers wrap between words, never inside one. */
#models_table th, #models_table th * { word-break: normal !important; overflow-wrap: normal !important;
  hyphens: none; }
"""
