"""Small pieces every zoo training script shares: checkpoints, EMA, loss plots, CPU threads."""
from __future__ import annotations

import copy
import os
from pathlib import Path

import torch


def setup_threads(threads: int) -> None:
    # The training machine is shared; one thread leaves a core for everybody else.
    torch.set_num_threads(max(1, threads))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def save_checkpoint(path: str | Path, **state) -> None:
    """Write atomically, so an interrupted save never leaves a broken checkpoint."""
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> dict | None:
    path = Path(path)
    if not path.exists():
        return None
    from modules.compat import numpy_scalar_globals

    # Older checkpoints stored a numpy float as the learning rate; allow exactly that.
    with torch.serialization.safe_globals(numpy_scalar_globals()):
        return torch.load(path, map_location="cpu", weights_only=True)


class EMA:
    """Exponential moving average of a module's parameters and buffers (for sampling and export)."""

    def __init__(self, model: torch.nn.Module, decay: float = 0.999):
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        for e, p in zip(self.model.parameters(), model.parameters()):
            e.lerp_(p.detach(), 1 - decay)
        for e, b in zip(self.model.buffers(), model.buffers()):
            e.copy_(b)


def save_loss_plot(curves: dict[str, list[float]], path: str | Path, smooth: int = 50) -> None:
    """One log-scale line per loss, smoothed with a running mean over ``smooth`` steps."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    for name, values in curves.items():
        if not values:
            continue
        v = np.asarray(values, dtype=float)
        k = max(1, min(smooth, len(v) // 5 or 1))
        ax.plot(np.convolve(v, np.ones(k) / k, mode="valid"), label=name)
    if any(curves.values()) and all(min(v) > 0 for v in curves.values() if v):
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
