"""The Extra Networks panel with 2000 LoRA and 2000 embedding files: how long listing the folders and rendering
the cards (one HTML block per kind) take, cold (first open: every embedding file parsed for its token count)
and warm (opened again: listings and parsed files cached), against a baseline of merely listing and stat-ing
the files (os.scandir), measured in the same run. With --browser, also the real app in headless Chromium: from
opening the panel to all cards shown, and a search over them.

    venv/bin/python bench/extra_networks.py [--files 2000] [--browser]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from modules.networks.embeddings import Embeddings  # noqa: E402
from modules.networks.files import EMBEDDING_SUFFIXES, LORA_SUFFIXES, NetworkFolder  # noqa: E402
from modules.networks.previews import LORA, TEXTUAL_INVERSION  # noqa: E402

PREVIEW_SHARE = 0.25  # a quarter of the files have a name.preview.png beside them


def make_folders(root: Path, count: int) -> tuple[Path, Path]:
    loras, embeddings = root / "Lora", root / "embeddings"
    for folder in (loras, embeddings):
        for sub in range(10):  # spread over subfolders, as real collections are
            (folder / f"set{sub}").mkdir(parents=True)
    preview = Image.new("RGB", (64, 64), (200, 80, 40))
    rng = random.Random(0)
    for i in range(count):
        lora = loras / f"set{i % 10}" / f"lora-style-{i:04d}.safetensors"
        lora.write_bytes(b"\0" * 256)  # the panel never reads a LoRA's weights
        vectors = torch.randn(rng.randint(1, 8), 768)
        stem = embeddings / f"set{i % 10}" / f"embedding-{i:04d}"
        if i % 2:
            torch.save({"string_to_param": {"*": vectors}, "step": i}, stem.with_suffix(".pt"))
        else:
            save_file({"emb_params": vectors}, str(stem.with_suffix(".safetensors")))
        if rng.random() < PREVIEW_SHARE:
            preview.save(lora.with_suffix("").with_suffix(".preview.png"))
            preview.save(stem.with_suffix(".preview.png"))
    return loras, embeddings


def timed(work) -> tuple[float, object]:
    start = time.perf_counter()
    value = work()
    return round((time.perf_counter() - start) * 1000, 1), value


def baseline(folders: list[Path]) -> int:
    count = 0
    stack = list(folders)
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                entry.stat()
                if entry.is_dir():
                    stack.append(Path(entry.path))
                count += 1
    return count


def server_side(loras: Path, embeddings: Path) -> dict:
    from modules.ui.extra_networks import render

    baseline_ms, entries = timed(lambda: baseline([loras, embeddings]))
    lora_files = NetworkFolder([loras], LORA_SUFFIXES)
    embedding_files = NetworkFolder([embeddings], EMBEDDING_SUFFIXES)
    backend = SimpleNamespace(lora_files=lora_files, embedding_files=embedding_files,
                              embeddings=Embeddings(embedding_files))
    result = {"baseline_scandir_ms": baseline_ms, "entries_stat": entries}
    for label in ("cold", "warm"):
        list_ms, _ = timed(lambda: (lora_files.files(), embedding_files.files()))
        lora_ms, lora_html = timed(lambda: render(backend, LORA))
        ti_ms, ti_html = timed(lambda: render(backend, TEXTUAL_INVERSION))
        result[label] = {"list_both_folders_ms": list_ms, "render_lora_cards_ms": lora_ms,
                         "render_embedding_cards_ms": ti_ms, "total_ms": round(list_ms + lora_ms + ti_ms, 1)}
    result["html_bytes"] = {"lora": len(lora_html), "textual_inversion": len(ti_html)}
    result["cards"] = {"lora": lora_html.count('class="zoo-en-card"'),
                       "textual_inversion": ti_html.count('class="zoo-en-card"')}
    result["warm_total_over_baseline"] = round(result["warm"]["total_ms"] / max(baseline_ms, 0.1), 1)
    return result


def in_browser(root: Path, count: int) -> dict:
    """The real app (webui.py) with these folders; Chromium opens the panel and searches."""
    from playwright.sync_api import sync_playwright

    from tests import tiny_models
    from tests.app_process import AppProcess

    tiny_models.make_tiny_sd15(root / "Stable-diffusion" / "tiny-sd15")
    figures = {}
    with AppProcess("--models-dir", str(root), "--outdir", str(root / "outputs"), "--skip-load-model-at-start") as app:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                                 args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(app.url)
            page.locator("#txt2img_prompt textarea").wait_for()
            start = time.perf_counter()
            page.locator("#txt2img_extra_networks").click()
            page.wait_for_function(f"document.querySelectorAll('#txt2img_textual_inversion_cards .zoo-en-card')"
                                   f".length === {count}", timeout=120_000)
            figures["open_panel_until_cards_shown_ms"] = round((time.perf_counter() - start) * 1000, 1)
            search_ms = page.evaluate("""() => {
                const box = document.querySelector('#txt2img_textual_inversion_cards .zoo-en-search');
                const start = performance.now();
                box.value = 'embedding-01'; box.dispatchEvent(new Event('input', {bubbles: true}));
                return performance.now() - start; }""")
            figures["search_2000_cards_ms"] = round(search_ms, 1)
            figures["cards_left_after_search"] = page.locator(
                "#txt2img_textual_inversion_cards .zoo-en-card:visible").count()
            sort_ms = page.evaluate("""() => {
                const select = document.querySelector('#txt2img_textual_inversion_cards .zoo-en-sort');
                const start = performance.now();
                select.value = 'date'; select.dispatchEvent(new Event('change', {bubbles: true}));
                return performance.now() - start; }""")
            figures["sort_by_date_ms"] = round(sort_ms, 1)
            # Opened again after one more file arrived: listings rescanned, one new file parsed, the rest cached.
            save_file({"emb_params": torch.randn(1, 768)}, str(root / "embeddings" / "zz-new.safetensors"))
            header = page.locator("#txt2img_extra_networks").get_by_text("Extra networks").first
            header.click()  # closed
            start = time.perf_counter()
            header.click()  # opened
            page.wait_for_function(f"document.querySelectorAll('#txt2img_textual_inversion_cards .zoo-en-card')"
                                   f".length === {count + 1}", timeout=120_000)
            figures["open_again_with_one_new_file_ms"] = round((time.perf_counter() - start) * 1000, 1)
            browser.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000, help="LoRA files, and as many embedding files")
    parser.add_argument("--browser", action="store_true", help="also time the real app in headless Chromium")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_ms, (loras, embeddings) = timed(lambda: make_folders(root, args.files))
        result = {"files_per_kind": args.files, "preview_share": PREVIEW_SHARE,
                  "embedding_formats": "half .safetensors (emb_params), half A1111 .pt; 1-8 vectors of 768",
                  "making_the_files_ms": make_ms, **server_side(loras, embeddings)}
        if args.browser:
            result["browser"] = in_browser(root, args.files)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
