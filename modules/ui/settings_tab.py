"""The Settings tab: the options this app acts on (A1111's names), saved to config.json, or, with logins,
as each user's own where the option is per-user (the VAE, the image format, ENSD ...). The server-wide ones
(saving, clip skip) only an admin changes: others see them greyed out. Same rules as POST /sdapi/v1/options
(modules/option_changes.py)."""
from __future__ import annotations

import gradio as gr

from modules.backend import Backend
from modules.errors import UserError
from modules.option_changes import NotAdmin, save_options, vae_choices
from modules.settings import OPTIONS
from modules.ui.common import login_name
from modules.ui.errors import user_errors

# The options shown, in order (sd_model_checkpoint has its own picker on the txt2img tab).
SHOWN = ("sd_vae", "samples_format", "grid_format", "jpeg_quality", "send_seed", "eta_noise_seed_delta",
         "samples_save", "grid_save", "CLIP_stop_at_last_layers", "face_restoration", "show_progress_type",
         "fp8_storage")


def _component(backend: Backend, key: str):
    option = OPTIONS[key]
    label = f"{option.label} ({key})"
    elem_id = f"setting_{key}"
    if key == "sd_vae":
        return gr.Dropdown(vae_choices(backend), value=option.default, label=label, elem_id=elem_id)
    if option.choices is not None:
        return gr.Radio(list(option.choices), value=option.default, label=label, elem_id=elem_id)
    if isinstance(option.default, bool):
        return gr.Checkbox(option.default, label=label, elem_id=elem_id)
    if key == "eta_noise_seed_delta":
        return gr.Number(option.default, label=label, precision=0, minimum=option.minimum, maximum=option.maximum,
                         elem_id=elem_id)
    return gr.Slider(option.minimum, option.maximum, value=option.default, step=1, label=label, elem_id=elem_id)


def build(backend: Backend, demo: gr.Blocks) -> None:
    note = gr.Markdown(elem_id="settings_note")
    controls = [_component(backend, key) for key in SHOWN]
    with gr.Row():
        apply = gr.Button("Apply settings", variant="primary", elem_id="settings_apply")
        reload = gr.Button("Reload", elem_id="settings_reload")
    status = gr.Markdown(elem_id="settings_status")
    admins = getattr(backend.extensions, "admins", None)

    def is_admin(user: str | None) -> bool:
        return admins is None or not admins.logins or admins.allows(user)

    def current(request: gr.Request):
        user = login_name(request)
        admin = is_admin(user)
        values = backend.settings.as_dict(user)
        updates = []
        for key, control in zip(SHOWN, controls):
            value = values.get(key, OPTIONS[key].default)
            choices = {"choices": vae_choices(backend)} if key == "sd_vae" else {}
            updates.append(gr.update(value=value, interactive=admin or OPTIONS[key].per_user, **choices))
        if user is None:
            text = "These settings are the server's: the defaults of every later job."
        elif admin:
            text = (f"Logged in as **{user}**, an admin: these are the server's defaults, for everyone who has "
                    "not picked their own.")
        else:
            text = (f"Logged in as **{user}**: these settings are your own. The greyed-out ones are the server's, "
                    "which only an admin (--admin-users) changes.")
        return [gr.update(value=text), *updates]

    @user_errors
    def apply_settings(sd_vae, samples_format, grid_format, jpeg_quality, send_seed, eta_noise_seed_delta,
                       samples_save, grid_save, clip_skip, face_restoration, show_progress_type, fp8_storage,
                       request: gr.Request):  # SHOWN's order
        values = (sd_vae, samples_format, grid_format, jpeg_quality, send_seed, eta_noise_seed_delta,
                  samples_save, grid_save, clip_skip, face_restoration, show_progress_type, fp8_storage)
        user = login_name(request)
        admin = is_admin(user)
        changes = {}
        for key, value in zip(SHOWN, values):
            if not admin and not OPTIONS[key].per_user:
                continue  # shown greyed out: not theirs to change
            if key in ("eta_noise_seed_delta", "jpeg_quality", "CLIP_stop_at_last_layers") and isinstance(value, float):
                value = int(value) if value.is_integer() else value
            changes[key] = value
        try:
            saved = save_options(backend, changes, user if admins is not None and admins.logins else None, admin)
        except NotAdmin as e:
            raise UserError(f"only an admin may change {e.args[0]}") from None
        whose = "your own" if user is not None and not admin else "the server's"
        return f"Saved ({whose}): {len(saved)} settings."

    outputs = [note, *controls]
    demo.load(current, outputs=outputs, api_name=False, queue=False)
    reload.click(current, outputs=outputs, api_name=False, queue=False)
    apply.click(apply_settings, inputs=controls, outputs=status, api_name=False)
