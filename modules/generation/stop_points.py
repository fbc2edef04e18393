"""Interrupt inside a step: a check before every sub-block of the UNet (and of the VAE decoder).

One sampling step is one UNet call; at 2048² on a CPU that call alone takes minutes, so a check between
steps is not enough. Forward pre-hooks on the blocks (down, mid, up) and on every module inside one that has
modules of its own (resnets, attention and transformer blocks, up/downsamplers) raise the job's Interrupted
between two of them. The pipeline is shared, cached state: the hooks are added for one job, while it holds
the device lock (so no other job runs these modules meanwhile), and always removed after, even on error."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from torch import nn


def stop_points(model: nn.Module) -> list[nn.Module]:
    """The modules of a UNet or VAE decoder before which a check costs nothing next to their work."""
    roots = [*getattr(model, "down_blocks", ()), getattr(model, "mid_block", None), *getattr(model, "up_blocks", ())]
    found = []
    for root in roots:
        if root is not None:
            found += [m for m in root.modules() if next(m.children(), None) is not None
                      and not isinstance(m, (nn.ModuleList, nn.ModuleDict))]
    return found


@contextmanager
def checked(model: nn.Module | None, check: Callable[[], None]) -> Iterator[None]:
    """`check()` (which raises to stop) runs before each of the model's stop points while inside."""
    handles = []
    try:
        for module in stop_points(model) if model is not None else ():
            handles.append(module.register_forward_pre_hook(lambda _module, _args: check()))
        yield
    finally:
        for handle in handles:
            handle.remove()
