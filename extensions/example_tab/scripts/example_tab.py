"""Example extension: a tab (on_ui_tabs), an HTTP route (on_app_started) and a callback (on_image_saved).

Copy extensions/example_tab to extensions/<your-name>, rename things, restart the app. See extensions/README.md."""
from __future__ import annotations

import gradio as gr
from fastapi import Request

from modules import owners
from modules.extensions import callbacks
from modules.public_paths import shown
from modules.security.logins import login_name

# Callbacks run in job threads: keep what they share small and simple. (whose login, path); login None: anonymous
saved: list[tuple[str | None, str]] = []


def saved_by(user: str | None) -> list[str]:
    """The paths saved by jobs of `user` (a login name); None: by anonymous jobs. Never another user's."""
    return [path for who, path in saved if who == user]


def greet(name: str) -> str:
    return f"Hello, {name.strip() or 'stranger'}! This tab comes from extensions/example_tab."


def saved_count(request: gr.Request) -> str:
    paths = saved_by(getattr(request, "username", None) or None)
    last = f" The last one: `{paths[-1]}`." if paths else ""
    return f"{len(paths)} image(s) of yours saved since the app started.{last}"


def add_tab():
    """on_ui_tabs: build the tab in its own gr.Blocks and return (blocks, title, elem_id)."""
    with gr.Blocks() as tab:
        gr.Markdown("### Example tab\nAn extension made this tab: "
                    "`extensions/example_tab/scripts/example_tab.py`.")
        with gr.Row():
            name = gr.Textbox(label="Your name", elem_id="example_tab_name", scale=4)
            button = gr.Button("Greet", variant="primary", elem_id="example_tab_greet", scale=1)
        greeting = gr.Markdown(elem_id="example_tab_greeting")
        count = gr.Markdown(elem_id="example_tab_saved")
        refresh = gr.Button("How many images were saved?", elem_id="example_tab_refresh", size="sm")
        button.click(greet, inputs=name, outputs=greeting, api_name="example_greet")
        refresh.click(saved_count, outputs=count, api_name=False)
    return [(tab, "Example", "example_tab")]


def add_routes(demo, app):
    """on_app_started: `app` is the FastAPI app the UI (and the API) is served by."""
    @app.get("/example-tab/saved")
    def saved_images(request: Request) -> dict:
        """The caller's own saved images only: a logged-in user's, or (anonymous) those of anonymous jobs."""
        paths = saved_by(login_name(request))
        return {"count": len(paths), "paths": paths[-10:]}


def remember(image: callbacks.ImageSaved) -> None:
    """on_image_saved: every image written to the outputs folder (.path, .image, .infotext, .tab, .owner)."""
    # "outputs/...": no answer names an absolute server path
    saved.append((owners.user_name(image.owner), shown(image.path)))


callbacks.on_ui_tabs(add_tab)
callbacks.on_app_started(add_routes)
callbacks.on_image_saved(remember)
