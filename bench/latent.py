"""Latent Explorer decode speed: what one slider move costs the server; prints one JSON object.

    venv/bin/python bench/latent.py [--repeats 15] [--threads N] [--no-http]

Uses the built-in β-VAE (models/Latent/shapes-beta-vae.safetensors) through the backend's registry
and manager; if it is absent, a file with the built-in config and random weights (same cost), and
the JSON says which. Timed, each the median ms per call:

    vae_decode_ms        the network alone (BetaVAE.decode of one latent): the floor
    endpoint_ms          the handler the `latent_decode` endpoint and the sliders run
                         (a latent-decode job through the runner: validate, job, model lock,
                         decode, picture with its PNG text)
    server_round_trip_ms endpoint + gradio's output step (PNG written to its cache): all the
                         server does per request apart from the HTTP/queue plumbing
    http_round_trip_ms   the same through a local server and gradio_client (queue, SSE, file fetch)

Target: server_round_trip_ms <= 30 on this CPU. ``overhead_ratio`` = server_round_trip / vae_decode.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from modules.paths import MODELS_DIR  # noqa: E402

BUILT_IN = MODELS_DIR / "Latent" / "shapes-beta-vae.safetensors"
TARGET_MS = 30.0


def models_folder(work: Path) -> tuple[Path, str, str]:
    """A models folder holding the VAE to time, its name, and what it is."""
    from modules.zoo.beta_vae import BetaVAE, BetaVAEConfig, save_latent_model

    latent = work / "models" / "Latent"
    latent.mkdir(parents=True)
    if BUILT_IN.is_file():
        shutil.copy2(BUILT_IN, latent / BUILT_IN.name)
        return work / "models", BUILT_IN.stem, f"built-in ({BUILT_IN.name})"
    torch.manual_seed(0)
    save_latent_model(latent / "random-builtin-config.safetensors", BetaVAE(BetaVAEConfig()).eval())
    return work / "models", "random-builtin-config", f"built-in config, random weights ({BUILT_IN.name} not found)"


def median_ms(fn, repeats: int, per_round: int = 20) -> float:
    for _ in range(5):
        fn()
    rounds = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(per_round):
            fn()
        rounds.append((time.perf_counter() - start) / per_round * 1000)
    return round(statistics.median(rounds), 3)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice, as the app)")
    p.add_argument("--no-http", action="store_true", help="skip the local HTTP round trip")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    import gradio as gr

    from modules.backend import Backend, BackendConfig
    from modules.devices import device_config
    from modules.capabilities.latent.models import using_beta_vae
    from modules.ui.latent.sliders import BetaVaeView

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        models_dir, name, which = models_folder(work)
        backend = Backend(BackendConfig(models_dir=models_dir, outdir=work / "outputs", cache_dir=work / "cache",
                                        devices=device_config("cpu"), offline=True))
        view = BetaVaeView(backend)
        with gr.Blocks():
            view.build()  # the components its handler answers with
        with using_beta_vae(backend.manager, name) as model:
            pass
        rng = np.random.default_rng(0)
        latents = [json.dumps(rng.standard_normal(model.latent_dim).round(3).tolist()) for _ in range(64)]
        tensors = [torch.tensor(json.loads(t), dtype=torch.float32)[None] for t in latents]
        counter = iter(range(10**9))

        def vae_decode():
            with torch.inference_mode():
                model.vae.decode(tensors[next(counter) % 64])

        def endpoint():
            return view.live_decode(None, name, latents[next(counter) % 64])[view.image]

        output = gr.Image(type="pil", format="png", render=False)

        def server_round_trip():
            output.postprocess(endpoint())

        result = {
            "model": which, "latent_dim": model.latent_dim, "image_size": model.image_size,
            "device": "cpu", "torch_threads": torch.get_num_threads(),
            "vae_decode_ms": median_ms(vae_decode, args.repeats),
            "endpoint_ms": median_ms(endpoint, args.repeats),
            "server_round_trip_ms": median_ms(server_round_trip, args.repeats),
        }
        result["overhead_ratio"] = round(result["server_round_trip_ms"] / result["vae_decode_ms"], 2)
        if not args.no_http:
            result["http_round_trip_ms"] = http_round_trip(backend, name, latents, args.repeats)
        result["target_ms"] = TARGET_MS
        result["meets_target"] = result["server_round_trip_ms"] <= TARGET_MS
    print(json.dumps(result, indent=1))


def http_round_trip(backend, name: str, latents: list[str], repeats: int) -> float:
    """Median over single calls of /latent_decode from gradio_client to a server in this process."""
    import gradio as gr
    from gradio_client import Client

    from modules.ui import latent_tab
    from tests.app_process import free_port

    with gr.Blocks() as demo:
        latent_tab.build(backend)
    demo.queue()
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}", verbose=False)
        for text in latents[:5]:
            client.predict(name, text, api_name="/latent_decode")
        times = []
        for i in range(repeats * 4):
            start = time.perf_counter()
            client.predict(name, latents[i % len(latents)], api_name="/latent_decode")
            times.append((time.perf_counter() - start) * 1000)
        return round(statistics.median(times), 2)
    finally:
        demo.close()


if __name__ == "__main__":
    main()
