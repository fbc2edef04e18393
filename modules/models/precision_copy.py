"""An fp32 copy of a model's weights, for one decode or encode that overflowed in half precision.

The shared module's dtype never changes, so no other user of the cached checkpoint sees it half
converted. The copy is built on the meta device and takes the weights converted to fp32 where they are
(one module's weights in fp32 for as long as the caller keeps it); nothing is moved between devices."""
from __future__ import annotations

import torch


def fp32_copy(module):
    """A new module of the same class and config with `module`'s weights in fp32 (hooks and shared state
    left behind). For diffusers models (`from_config`)."""
    with torch.device("meta"):
        copy = type(module).from_config(module.config)
    copy.load_state_dict({name: tensor.float() for name, tensor in module.state_dict().items()}, assign=True)
    return copy.eval()
