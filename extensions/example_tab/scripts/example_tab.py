"""Example extension: a tab (on_ui_tabs), an HTTP route (on_app_started) and a callback (on_image_saved).

Copy extensions/example_tab to extensions/<your-name>, rename things, restart the app. See extensions/README.md."""
from __future__ import annotations

import gradio as gr

from modules.extensions import callbacks
from modules.public_paths import shown

# Callbacks run in job threads: keep what they share small and simple.
saved_paths: list[str] = []


def greet(name: str) -> str:
    return f"Hello, {name.strip() or 'stranger'}! This tab comes from extensions/example_tab."


def saved_count() -> str:
    last = f" The last one: `{saved_paths[-1]}`." if saved_paths else ""
    return f"{len(saved_paths)} image(s) saved since the app started.{last}"


def add_tab():
    """on_ui_tabs: build the tab in its own gr.Blocks and return (blocks, title, elem_id)."""
    with gr.Blocks() as tab:
        gr.Markdown("### Example tab\nAn extension made this tab: "
                    "`extensions/example_tab/scripts/example_tab.py`.")
        with gr.Row():
            name = gr.Textbox(label="Your name", elem_id="example_tab_name", scale=4)
            button = gr.Button("Greet", variant="primary", elem_id="example_tab_greet", scale=1)
        greeting = gr.Markdown(elem_id="example_tab_greeting")
        saved = gr.Markdown(saved_count(), elem_id="example_tab_saved")
        refresh = gr.Button("How many images were saved?", elem_id="example_tab_refresh", size="sm")
        button.click(greet, inputs=name, outputs=greeting, api_name="example_greet")
        refresh.click(saved_count, outputs=saved, api_name=False)
    return [(tab, "Example", "example_tab")]


def add_routes(demo, app):
    """on_app_started: `app` is the FastAPI app the UI (and the API) is served by."""
    @app.get("/example-tab/saved")
    def saved_images() -> dict:
        return {"count": len(saved_paths), "paths": saved_paths[-10:]}


def remember(saved: callbacks.ImageSaved) -> None:
    """on_image_saved: every image written to the outputs folder (saved.path, .image, .infotext, .tab)."""
    saved_paths.append(shown(saved.path))  # "outputs/...": no answer names an absolute server path


callbacks.on_ui_tabs(add_tab)
callbacks.on_app_started(add_routes)
callbacks.on_image_saved(remember)
