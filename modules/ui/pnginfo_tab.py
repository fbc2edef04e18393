"""PNG Info: read a picture's generation parameters back, and send them to txt2img."""
from __future__ import annotations

import html
from pathlib import Path

import gradio as gr

from modules.capabilities.refiner import DEFAULT_SWITCH_AT
from modules.errors import InvalidRequest, UserError
from modules.generation.infotext import parse_infotext
from modules.capabilities.txt2img.hires import SAME_SCHEDULER
from modules.generation.samplers import AUTOMATIC, find_schedule, resolve
from modules.image_limits import UNREADABLE, UNREADABLE_HINT, open_image
from modules.images import read_parameters
from modules.public_paths import scrub
from modules.styles import extract_styles
from modules.ui.common import error_html, login_name
from modules.ui.txt2img_tab import Txt2ImgTab


def image_info(path: str, name: str | None = None) -> tuple[str, str, dict]:
    """(parameters text, HTML table of every text chunk, parsed infotext) of an image file.
    Raises InvalidRequest naming the file (its upload name) when it is no image or too large."""
    try:
        with open_image(path, "image", name) as image:  # the pixel count is checked before anything is decoded
            image.load()
            parameters = read_parameters(image) or ""
            chunks = {k: v for k, v in image.info.items() if isinstance(v, str)}
    except UNREADABLE:  # a header that opened, a body that does not decode
        raise InvalidRequest("image", f"{name + ' ' if name else ''}{UNREADABLE_HINT}") from None
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td><pre>{html.escape(v)}</pre></td></tr>" for k, v in chunks.items())
    table = f'<table class="zoo-pnginfo">{rows}</table>' if rows else "<p>No text chunks in this image.</p>"
    return parameters, table, parse_infotext(parameters) if parameters else {}


def read_image_info(path: str | None, name: str | None = None) -> tuple[str, str, dict]:
    """image_info, with a refusal shown in the table instead of raised."""
    if not path:
        return "", "", {}
    try:
        return image_info(path, name)
    except InvalidRequest as e:
        return "", error_html(str(e)), {}


def on_upload(upload) -> tuple[str, str, dict]:
    """The upload as Gradio's file data (preprocess=False: Gradio's own decoding would fail first, with a raw
    ComponentProcessingError naming server paths); a file that is no image is one toast naming it."""
    if not upload:
        return "", "", {}
    path = upload.get("path") if isinstance(upload, dict) else str(upload)
    name = Path(upload.get("orig_name") or "").name or None if isinstance(upload, dict) else None
    try:
        return image_info(path, name)
    except InvalidRequest as e:
        raise gr.Error(scrub(str(e)), title="PNG Info") from None


def build(txt2img: Txt2ImgTab, tabs: gr.Tabs, txt2img_tab_id: str, img2img=None) -> None:
    with gr.Row():
        with gr.Column():
            image = gr.Image(label="Source", type="filepath", sources=["upload", "clipboard"], height=384,
                             elem_id="pnginfo_image")
        with gr.Column():
            parameters = gr.Textbox(label="Parameters", lines=6, interactive=False, elem_id="pnginfo_parameters")
            table = gr.HTML(elem_id="pnginfo_table")
            with gr.Row():
                send = gr.Button("Send to txt2img", elem_id="pnginfo_send_to_txt2img")
                send_img2img = gr.Button("Send to img2img", elem_id="pnginfo_send_to_img2img",
                                         visible=img2img is not None)
    parsed = gr.State({})
    # upload, not change: Gradio fires change twice for one upload (two toasts for one bad file).
    image.upload(on_upload, inputs=image, outputs=[parameters, table, parsed], api_name="png_info",
                 preprocess=False, show_progress="hidden")
    image.clear(lambda: ("", "", {}), outputs=[parameters, table, parsed], api_name=False, show_progress="hidden")
    targets = [txt2img.prompt, txt2img.negative_prompt, txt2img.sampler, txt2img.steps, txt2img.cfg_scale,
               txt2img.width, txt2img.height, txt2img.seed, txt2img.scheduler, txt2img.styles]
    variation = [txt2img.seed_extra, txt2img.subseed, txt2img.subseed_strength, txt2img.seed_resize_from_w,
                 txt2img.seed_resize_from_h]
    styles = txt2img.backend.styles

    def send_to_txt2img(values: dict, request: gr.Request) -> list:
        values = with_styles(values, styles.styles())
        sent = send_values(values)
        if not txt2img.backend.settings.for_user("send_seed", login_name(request)):
            sent[-2] = gr.skip()  # the send_seed setting: the seed stays as it is
        varied = variation_values(values)
        return [*sent, styles_value(values), *hires_values(values), *refiner_values(values, txt2img.backend),
                *flow_values(values), varied[1] > 0 or varied[2] > 0, *varied,
                restore_faces_value(values, txt2img.backend), gr.Tabs(selected=txt2img_tab_id)]

    send.click(send_to_txt2img, inputs=parsed,
               outputs=[*targets, *txt2img.hires.inputs(), *txt2img.refiner.inputs(), txt2img.distilled_cfg_scale,
                        txt2img.modules, *variation, txt2img.restore_faces, tabs], api_name=False,
               show_progress="hidden")
    if img2img is not None:
        img2img.send_from(send_img2img, [image, parameters], picture_and_text, tabs)


def picture_and_text(path: str | None, parameters: str) -> tuple:
    """The uploaded picture and its parameters, for "Send to img2img"."""
    if not path:
        raise InvalidRequest("image", "upload a picture first")
    with open_image(path, "image") as picture:
        picture.load()
        return picture.convert("RGB"), parameters or ""


def with_styles(parsed: dict, styles: list) -> dict:
    """A1111's default "Apply if any" for pasted infotext: the saved styles a picture's prompts were made with
    are taken off its prompts and given as "Styles array" (hires fix's prompts: only when they show the same
    styles, as A1111 ≥ 1.8 does)."""
    if "Prompt" not in parsed:
        return parsed
    found, prompt, negative = extract_styles(parsed["Prompt"], parsed.get("Negative prompt", ""), styles)
    if not found:
        return parsed
    result = {**parsed, "Prompt": prompt, "Negative prompt": negative, "Styles array": found}
    if "Hires prompt" in parsed or "Hires negative prompt" in parsed:
        hires_found, hires_prompt, hires_negative = extract_styles(
            parsed.get("Hires prompt", parsed["Prompt"]), parsed.get("Hires negative prompt", parsed.get(
                "Negative prompt", "")), styles)
        if hires_found != found:
            return parsed
        result["Hires prompt"] = "" if hires_prompt == prompt else hires_prompt
        result["Hires negative prompt"] = "" if hires_negative == negative else hires_negative
    return result


def styles_value(parsed: dict):
    """The Styles dropdown's value from with_styles' result; left as it is when the picture shows none."""
    return parsed["Styles array"] if "Styles array" in parsed else gr.skip()


def send_values(parsed: dict) -> list:
    """Values for the txt2img fields; a field the infotext does not mention is left as it is."""
    def number(key, cast):
        try:
            return cast(float(parsed[key]))
        except (KeyError, ValueError):
            return gr.skip()

    def text(key):
        return parsed[key] if key in parsed else gr.skip()

    sampler, schedule = parsed.get("Sampler"), parsed.get("Schedule type")
    if sampler:  # A1111 < 1.9 wrote "DPM++ 2M Karras"; ≥ 1.9 "DPM++ 2M" and "Schedule type: Karras"
        try:
            sampler, schedule = resolve(sampler, schedule)
        except InvalidRequest:
            pass  # a sampler we do not have: shown as written, Generate names it
    return [text("Prompt"), text("Negative prompt"), sampler or gr.skip(), number("Steps", int),
            number("CFG scale", float), number("Size-1", int), number("Size-2", int), number("Seed", int),
            (schedule or AUTOMATIC) if sampler else gr.skip()]


def flow_values(parsed: dict) -> list:
    """Forge's "Distilled CFG Scale" (FLUX.1 dev) and "Module 1, 2, ..." (its VAE / text encoder files)."""
    try:
        distilled = float(parsed["Distilled CFG Scale"])
    except (KeyError, ValueError):
        distilled = gr.skip()
    modules = [parsed[f"Module {i}"] for i in range(1, 9) if f"Module {i}" in parsed]
    return [distilled, modules if modules else gr.skip()]


def hires_values(parsed: dict) -> list:
    """Values for txt2img's Hires. fix controls (hires_controls.NAMES' order): on, with the picture's
    settings, when its infotext has A1111's Hires fields; else off and the rest as it is."""
    if not any(key in parsed for key in ("Hires upscaler", "Hires upscale", "Hires resize")):
        return [False] + [gr.skip()] * 10

    def number(key, cast, default):
        try:
            return cast(float(parsed[key]))
        except (KeyError, ValueError):
            return default

    return [True, parsed.get("Hires upscaler", "Latent"), number("Hires steps", int, 0),
            number("Denoising strength", float, 0.7), number("Hires upscale", float, 2.0),
            number("Hires resize-1", int, 0), number("Hires resize-2", int, 0),
            parsed.get("Hires sampler", "Use same sampler"), _hires_schedule_value(parsed),
            parsed.get("Hires prompt", ""), parsed.get("Hires negative prompt", "")]


def _hires_schedule_value(parsed: dict) -> str:
    """The Hires schedule type control's value: "Use same scheduler" unless the infotext names one (a label we do
    not have is shown as written; Generate names it)."""
    written = parsed.get("Hires schedule type")
    if not written:
        return SAME_SCHEDULER
    try:
        return find_schedule(written).label
    except InvalidRequest:
        return written


def refiner_values(parsed: dict, backend) -> list:
    """Values for txt2img's Refiner controls (refiner_controls.NAMES' order): on, with the picture's refiner
    (A1111's "Refiner: name [hash]", found among the checkpoints here, else as written) and switch point, when
    its infotext names one; else off and the rest as it is."""
    name = parsed.get("Refiner")
    if not name:
        return [False, gr.skip(), gr.skip()]
    try:
        title = backend.find_checkpoint_title(name)
    except UserError:  # not here (another machine's): shown as written, refused by name if generated with
        title = name
    try:
        switch_at = float(parsed.get("Refiner switch at", DEFAULT_SWITCH_AT))
    except ValueError:
        switch_at = DEFAULT_SWITCH_AT
    return [True, title, switch_at]


def restore_faces_value(parsed: dict, backend) -> bool:
    """Restore faces ticked when the picture's infotext has A1111's "Face restoration" and a restorer is here."""
    return "Face restoration" in parsed and bool(backend.manager.face_restorer_files.available())


def variation_values(parsed: dict) -> list:
    """Variation seed, strength and "Seed resize from" width and height (A1111's infotext keys); a picture
    without them sends the values that turn them off."""
    def number(key, cast, default):
        try:
            return cast(float(parsed[key]))
        except (KeyError, ValueError):
            return default

    width, _, height = str(parsed.get("Seed resize from", "")).partition("x")
    resize = [int(width), int(height)] if width.isdigit() and height.isdigit() else [0, 0]
    return [number("Variation seed", int, -1), number("Variation seed strength", float, 0.0), *resize]
