"""The Extensions tab: what is installed, what failed (with tracebacks), enable/disable, install from a git URL.
Layout and wiring only: the work is in modules/extensions."""
from __future__ import annotations

import html
import json
import traceback

import gradio as gr

from modules.errors import UserError
from modules.extensions import Extensions
from modules.public_paths import scrub, shown
from modules.extensions.installer import admin_refusal, install_from_git, refusal_message, set_enabled
from modules.ui.common import error_html, info_html, login_name

STATUS_ICON = {"loaded": "✓", "error": "⚠", "disabled": "–", "not loaded": "…"}  # glyphs every font has


def table_html(extensions: Extensions) -> str:
    if not extensions.items:
        folder = extensions.folder or "extensions/"
        return f"<p>No extensions in <code>{html.escape(shown(folder))}</code>.</p>"
    rows = []
    for e in extensions.items:
        provides = [*(f"script: {t}" for t in dict.fromkeys(e.script_titles)), *(f"tab: {t}" for t in e.tab_titles)]
        errors = "".join(
            f'<details class="zoo-extension-error"><summary>{html.escape(err.where)}: {html.escape(scrub(err.message))}'
            f'</summary><pre>{html.escape(scrub(err.traceback))}</pre></details>' if err.traceback else
            f'<div class="zoo-extension-error">{html.escape(err.where)}: {html.escape(scrub(err.message))}</div>'
            for err in e.errors)
        rows.append(
            f'<tr data-extension="{html.escape(e.name)}" data-status="{e.status}">'
            f'<td><b>{html.escape(e.title)}</b><br><code>{html.escape(e.name)}</code></td>'
            f'<td>{html.escape(e.version)}</td>'
            f'<td>{STATUS_ICON.get(e.status, "")} {e.status}</td>'
            f'<td>{html.escape(e.description)}<br>{"<br>".join(html.escape(p) for p in provides)}{errors}</td></tr>')
    return ('<table class="zoo-extensions"><thead><tr><th>Extension</th><th>Version</th><th>Status</th>'
            f'<th>What it does</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')


def assets_js(extensions: Extensions) -> str:
    """JavaScript for demo.load: adds this tab's CSS and every loaded extension's style.css and javascript/*.js
    to the page, as <style> and <script> elements (so scripts run in the page's global scope, as in A1111)."""
    css = CSS + extensions.css()
    scripts = extensions.javascript()
    return ("() => {\n"
            f"  const css = {json.dumps(css)}, scripts = {json.dumps(scripts)};\n"
            "  const style = document.createElement('style'); style.dataset.source = 'extensions';\n"
            "  style.textContent = css; document.head.appendChild(style);\n"
            "  for (const [name, code] of scripts) { const s = document.createElement('script'); "
            "s.dataset.source = name; s.textContent = code + '\\n//# sourceURL=extensions/' + name; "
            "document.head.appendChild(s); }\n"
            "}")


def render_tab(extension, blocks) -> None:
    """Render an extension's tab (from on_ui_tabs) inside the current gr.Tab; a failure is reported in place."""
    try:
        blocks.render()
    except Exception as e:  # noqa: BLE001 - the other tabs must still work
        extension.add_error("on_ui_tabs: render", e, traceback.format_exc())
        gr.HTML(error_html(f"The extension {extension.name} failed to build this tab: {type(e).__name__}: {e} "
                           "(see the Extensions tab)"))


def build(extensions: Extensions, demo: gr.Blocks) -> None:
    """The tab. Saving what is enabled and installing are an admin's acts: their controls appear (on page
    load) only for whoever may use them, and every handler checks again on the server, which is what counts."""
    gr.Markdown("Extensions live in folders under `extensions/`. Changes to what is enabled, and new "
                "extensions, take effect when the app is restarted; a disabled extension's hooks stop at once.")
    table = gr.HTML(table_html(extensions), elem_id="extensions_table")
    names = [e.name for e in extensions.items]
    with gr.Row(equal_height=True):
        enabled = gr.CheckboxGroup(names, value=[e.name for e in extensions.items if e.enabled],
                                   label="Enabled", elem_id="extensions_enabled", scale=5, interactive=False)
        with gr.Column(scale=1, min_width=160):
            apply = gr.Button("Save", variant="primary", elem_id="extensions_apply", visible=False)
            refresh = gr.Button("↻ Refresh", elem_id="extensions_refresh", size="sm")
    message = gr.HTML(elem_id="extensions_message")
    admin_note = gr.Markdown(elem_id="extensions_admin_note")
    with gr.Accordion("Install from a git URL", open=False, elem_id="extensions_install_box",
                      visible=False) as install_box:
        refused = extensions.install_refusal
        gr.Markdown(refusal_message(refused) if refused else
                    "The repository is cloned into `extensions/` and its `install.py` (if any) runs; "
                    "restart the app to load it. Only install code you trust.", elem_id="extensions_install_note")
        with gr.Row(equal_height=True):
            url = gr.Textbox(label="git URL", placeholder="https://github.com/user/sd-webui-extension.git",
                             elem_id="extensions_install_url", scale=4, interactive=not refused)
            name = gr.Textbox(label="Folder name (optional)", elem_id="extensions_install_name", scale=2,
                              interactive=not refused)
            install = gr.Button("Install", elem_id="extensions_install", scale=1, interactive=not refused)
        install_message = gr.HTML(elem_id="extensions_install_message")

    def show_controls(request: gr.Request):
        reason = admin_refusal(extensions, login_name(request))
        allowed = reason is None
        return (gr.CheckboxGroup(interactive=allowed), gr.Button(visible=allowed), gr.Accordion(visible=allowed),
                "" if allowed else reason)

    def save(chosen, request: gr.Request):
        chosen = set(chosen or [])
        try:
            set_enabled(extensions, {n: n in chosen for n in [e.name for e in extensions.items]}, login_name(request))
        except UserError as e:
            return gr.skip(), error_html(str(e))
        off = [e.name for e in extensions.items if not e.enabled]
        return table_html(extensions), info_html(
            f"Saved{' (disabled: ' + ', '.join(off) + ')' if off else ''}. Restart the app to apply.")

    def do_install(git_url, folder_name, request: gr.Request):
        try:
            extension, text = install_from_git(extensions, git_url, folder_name, user=login_name(request))
        except UserError as e:
            return gr.skip(), gr.skip(), error_html(str(e))
        return table_html(extensions), gr.CheckboxGroup(choices=[e.name for e in extensions.items],
                                                        value=[e.name for e in extensions.items if e.enabled]), \
            (error_html(text) if extension.errors else info_html(text))

    demo.load(show_controls, outputs=[enabled, apply, install_box, admin_note], api_name=False, queue=False)
    apply.click(save, inputs=enabled, outputs=[table, message], api_name=False, show_progress="hidden")
    refresh.click(lambda: table_html(extensions), outputs=table, api_name=False, queue=False,
                  show_progress="hidden")
    install.click(do_install, inputs=[url, name], outputs=[table, enabled, install_message], api_name=False,
                  show_progress="minimal")  # a clone takes a while: a spinner, no timer text over the message


CSS = """
.zoo-extensions { width: 100%; border-collapse: collapse; }
.zoo-extensions th, .zoo-extensions td { text-align: left; vertical-align: top; padding: 6px 8px;
  border-bottom: 1px solid #ddd; }
.zoo-extension-error { color: #b00020; margin-top: 4px; }
.zoo-extension-error pre { white-space: pre-wrap; font-size: 12px; color: #333; background: #f6f6f6; padding: 6px; }
"""
