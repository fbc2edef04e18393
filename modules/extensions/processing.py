"""Names extensions import from here (A1111 kept its `p` in modules/processing.py): every capability's scripts,
the GAN Sampler's included, run through modules/capabilities/scripting.py, and these are its names."""
from __future__ import annotations

from modules.capabilities.scripting import JobPart, Processing, ScriptArgs, ScriptFailed, resolve_call

__all__ = ["JobPart", "Processing", "ScriptArgs", "ScriptFailed", "resolve_call"]
