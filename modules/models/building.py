"""One lock for building torch modules anywhere in the process.

accelerate's `init_empty_weights` (our fast loader uses it, and so do diffusers' and transformers'
`from_pretrained`) patches `nn.Module.register_parameter` for the whole process, not just the calling
thread: a module built in another thread meanwhile gets meta parameters and fails later with "Cannot copy
out of meta tensor". It happened on a plain `python webui.py`: the GAN tab built the built-in GAN while the
default checkpoint loaded in the background. Every load of a model holds this lock while it builds."""
from __future__ import annotations

import threading

BUILD_LOCK = threading.RLock()
