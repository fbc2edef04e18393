"""The Styles row under txt2img's and img2img's prompts (A1111's names): pick saved styles (modules/styles.py)
that the job applies to the prompts when it runs, move them into the prompt boxes, or save the current
prompt and negative prompt as a new style.

Saving changes a file every user shares, so it is for admins (modules/security/admins.py): with logins, the
users named in --admin-users; without logins, whoever uses an app bound to this machine only."""
from __future__ import annotations

import gradio as gr

from modules.errors import UserError
from modules.styles import PromptStyle, apply_styles
from modules.ui.common import info_html, login_name
from modules.ui.errors import user_errors


def style_names(backend) -> list[str]:
    return [style.name for style in backend.styles.styles()]


def styled_prompts(backend, prompt: str, negative_prompt: str, names) -> tuple[str, str, list]:
    """"Apply styles": the picked styles written into the prompts, and the pick cleared (else they would apply
    twice)."""
    styles = backend.styles.resolve(list(names or []))
    prompt, negative_prompt = apply_styles(prompt or "", negative_prompt or "", styles)
    return prompt, negative_prompt, []


def save_style(backend, name: str, prompt: str, negative_prompt: str, user: str | None) -> list[str]:
    """Save the prompts as style `name` (replacing one of that name); the style names after it."""
    refusal = backend.extensions.admins.refusal(user)
    if refusal is not None:
        raise UserError(f"Only admins save styles: {refusal}")
    backend.styles.save(PromptStyle(name or "", prompt or "", negative_prompt or ""))
    return style_names(backend)


class StyleControls:
    def __init__(self, backend, tab: str):
        self.backend, self.tab = backend, tab

    def build(self) -> None:
        t = self.tab
        with gr.Row():
            self.dropdown = gr.Dropdown(style_names(self.backend), value=[], multiselect=True, label="Styles",
                                        elem_id=f"{t}_styles", scale=5)
            self.apply = gr.Button("Apply styles", elem_id=f"{t}_style_apply", size="sm", scale=1, min_width=100)
        with gr.Accordion("Save as style", open=False, elem_id=f"{t}_style_save_box"):
            with gr.Row():
                self.name = gr.Textbox(label="Style name", max_lines=1, elem_id=f"{t}_style_name", scale=4)
                self.save = gr.Button("Save style", elem_id=f"{t}_style_save", size="sm", scale=1, min_width=100)
            self.saved = gr.HTML(elem_id=f"{t}_style_saved")

    def wire(self, prompt: gr.Textbox, negative_prompt: gr.Textbox) -> None:
        backend = self.backend

        @user_errors
        def apply(prompt_text, negative_text, names):
            return styled_prompts(backend, prompt_text, negative_text, names)

        @user_errors
        def save(name, prompt_text, negative_text, request: gr.Request):
            names = save_style(backend, name, prompt_text, negative_text, login_name(request))
            return gr.Dropdown(choices=names), info_html(f"Saved style {name.strip()!r}.")

        self.apply.click(apply, inputs=[prompt, negative_prompt, self.dropdown],
                         outputs=[prompt, negative_prompt, self.dropdown], api_name=False, queue=False)
        self.save.click(save, inputs=[self.name, prompt, negative_prompt], outputs=[self.dropdown, self.saved],
                        api_name=False, queue=False)
        # The file may have changed (another tab, another user, an editor): the choices follow when opened.
        self.dropdown.focus(lambda: gr.Dropdown(choices=style_names(backend)), outputs=self.dropdown,
                            api_name=False, queue=False)
