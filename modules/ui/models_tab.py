"""Models tab: what the pipeline manager holds (checkpoints, zoo models, VAE files, upscalers, face restorers,
preview decoders, LPIPS, data) and where, with unload buttons."""
from __future__ import annotations

import datetime

import gradio as gr

from modules.backend import Backend
from modules.errors import UserError
from modules.models.cache import ModelInUse
from modules.ui.common import error_html, info_html

COLUMNS = ["Model", "Kind", "Architecture", "Where", "Size (MB)", "In use", "Last used", "Load (s)",
           "Modules reused at load", "Last swap (s)", "Shared components", "Compile warm-up (s)"]
COMPONENT_COLUMNS = ["Model", "Component", "Stored as", "On", "Size (MB)", "Shared"]
ALWAYS_SHOWN = 5  # Model, Kind, Architecture, Where, Size; the others only when some row has a value


def table(backend: Backend) -> list[list]:
    rows = []
    for m in backend.cached_models():
        rows.append([
            m["title"], m["kind"], m["architecture"], m["where"], round(m["bytes"] / 2**20, 1), "yes" if m["in_use"] else "",
            datetime.datetime.fromtimestamp(m["last_used"]).strftime("%H:%M:%S"), round(m["load_seconds"], 2),
            m["reused_modules"] or "", "" if m["swap_seconds"] is None else round(m["swap_seconds"], 3),
            ", ".join(m["shared_components"]), "" if m["compile_seconds"] is None else m["compile_seconds"],
        ])
    return rows


def components_table(backend: Backend) -> dict:
    """One row per weight-holding part of each cached model, by its pipeline name (unet or transformer, vae,
    text_encoder_2 ...; a zoo model or VAE file: its one module), with how and where its weights are stored."""
    rows = [[m["title"], c["name"], c["dtype"], c["device"], round(c["bytes"] / 2**20, 2), "yes" if c["shared"] else ""]
            for m in backend.cached_models() for c in m["components"]]
    if not any(row[-1] for row in rows):  # nothing shared: no empty column, as in the table above
        return {"headers": COMPONENT_COLUMNS[:-1], "data": [row[:-1] for row in rows]}
    return {"headers": COMPONENT_COLUMNS, "data": rows}


def shown_table(backend: Backend) -> dict:
    """The table without its empty columns (on a CPU nothing is swapped, reused or shared)."""
    rows = table(backend)
    keep = [i for i in range(len(COLUMNS)) if i < ALWAYS_SHOWN or any(row[i] not in ("", None) for row in rows)]
    return {"headers": [COLUMNS[i] for i in keep], "data": [[row[i] for i in keep] for row in rows]}


WORKER_COLUMNS = ["Worker", "Device", "Node", "Process", "Holds (least recently used first)", "LoRA sets attached",
                  "Running", "Jobs done"]


def _lora_sets(worker: dict) -> str:
    """"model: set, set; model: set" for the checkpoints that have LoRAs attached on this worker."""
    return "; ".join(f"{key}: {', '.join(sets)}" for key, sets in worker.get("lora_sets", {}).items())


def workers_table(backend: Backend) -> dict:
    """--workers ray: each generation worker, its device and the models it holds (none without workers)."""
    rows = []
    if backend.workers is not None:
        try:
            rows = [[w["replica"], w["device"], w["node"], w["pid"], ", ".join(w["models"]), _lora_sets(w),
                     ", ".join(w["running"]), w["jobs_done"]] for w in backend.workers.replicas()]
        except Exception as e:  # noqa: BLE001 - Ray unreachable now: say so in the table, keep the tab working
            rows = [[f"workers unreachable: {type(e).__name__}"] + [""] * (len(WORKER_COLUMNS) - 1)]
    return {"headers": WORKER_COLUMNS, "data": rows or [["(no worker heard from yet)"] + [""] * (len(WORKER_COLUMNS) - 1)]}


def totals(backend: Backend) -> str:
    t = backend.cache_totals()
    line = f"RAM: {t['ram_bytes'] / 2**20:.0f} MB of {t['ram_budget'] / 2**30:.1f} GB budget"
    if t["device_budget"] is not None:
        line += f" · {t['device']}: {t['device_bytes'] / 2**20:.0f} MB of {t['device_budget'] / 2**30:.1f} GB budget"
    else:
        line += f" · device: {t['device']} (runs from RAM)"
    return line


def build(backend: Backend, tab: gr.Tab) -> None:
    summary = gr.Markdown(totals(backend), elem_id="models_totals")
    models = gr.Dataframe(value=shown_table(backend), interactive=False, elem_id="models_table", wrap=True)
    parts = gr.Dataframe(value=components_table(backend), interactive=False, elem_id="models_components",
                         label="Components", show_label=True, wrap=True)
    workers = gr.Dataframe(value=workers_table(backend), interactive=False, elem_id="models_workers",
                           label="Workers (--workers ray)", show_label=True, wrap=True,
                           visible=backend.workers is not None)
    with gr.Row():
        choice = gr.Dropdown([m["title"] for m in backend.cached_models()], label="Cached model",
                             elem_id="models_choice", scale=4)
        unload = gr.Button("Unload", elem_id="models_unload", scale=1)
        unload_all = gr.Button("Unload all", elem_id="models_unload_all", scale=1)
        refresh = gr.Button("Refresh", elem_id="models_refresh", scale=1)
    message = gr.HTML(elem_id="models_message")

    def view(note: str = ""):
        titles = [m["title"] for m in backend.cached_models()]
        workers_now = workers_table(backend) if backend.workers is not None else gr.skip()  # hidden without
        return (totals(backend), shown_table(backend), components_table(backend), workers_now,
                gr.Dropdown(choices=titles, value=None), note)

    def on_unload(title):
        if not title:
            return view(info_html("Pick a cached model above to unload it (or press Unload all)."))
        try:
            backend.manager.unload(title)
        except (ModelInUse, UserError) as e:
            return view(error_html(str(e)))
        return view(info_html(f"Unloaded {title}"))

    def on_unload_all():
        kept = backend.manager.unload_all()
        return view(info_html("Kept (in use): " + ", ".join(kept)) if kept else info_html("Unloaded all"))

    outputs = [summary, models, parts, workers, choice, message]
    # Instant actions: no progress overlay over the table.
    unload.click(on_unload, inputs=choice, outputs=outputs, api_name="models_unload", show_progress="hidden")
    unload_all.click(on_unload_all, outputs=outputs, api_name="models_unload_all", show_progress="hidden")
    refresh.click(view, outputs=outputs, api_name="models_refresh", show_progress="hidden")
    tab.select(view, outputs=outputs, api_name=False, show_progress="hidden")
