"""Small pieces the tabs share: progress bar and message HTML, and the user/session a click comes from."""
from __future__ import annotations

import html

import gradio as gr

from modules.jobs import Job


def owner_of(request: gr.Request | None) -> str | None:
    """Whose job this is: the logged-in user, else the browser session."""
    if request is None:
        return None
    return getattr(request, "username", None) or getattr(request, "session_hash", None)


def error_html(message: str) -> str:
    return f'<div class="zoo-error" role="alert">⚠ {html.escape(message)}</div>'


def info_html(message: str) -> str:
    return f'<div class="zoo-info">{html.escape(message)}</div>'


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
            text += f" · ETA {eta:.0f} s"
    return (f'<div class="zoo-progress" data-progress="{percent}"><div class="zoo-progress-bar" '
            f'style="width:{percent}%"></div><span>{html.escape(text)}</span></div>')


CSS = """
.zoo-error { color: #b00020; background: #fde7ea; border-radius: 6px; padding: 8px 12px; font-weight: 600; }
.zoo-info { color: #444; background: #eef3fb; border-radius: 6px; padding: 8px 12px; }
.zoo-progress { position: relative; height: 24px; background: #e8e8e8; border-radius: 6px; overflow: hidden; }
.zoo-progress-bar { position: absolute; left: 0; top: 0; bottom: 0; background: #f97316; transition: width .2s; }
.zoo-progress span { position: relative; padding-left: 8px; line-height: 24px; font-size: 13px; }
.zoo-pnginfo pre { white-space: pre-wrap; word-break: break-word; margin: 0; }
.zoo-pnginfo { width: 100%; table-layout: fixed; }
.zoo-pnginfo th { width: 8em; text-align: left; vertical-align: top; }
#txt2img_generate { min-height: 72px; font-size: 1.1em; }
"""
