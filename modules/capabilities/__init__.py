"""Capabilities: what the app can make (txt2img, gan, latent ...), each a package of one shape that the
runner (modules/capabilities/runner.py) takes through validate → model → run → hooks → save → outcome."""
from modules.capabilities.base import (Capability, GenerationFailed, InternalError, OutOfMemory, RunContext,
                                       SaveSpec)

__all__ = ["Capability", "GenerationFailed", "InternalError", "OutOfMemory", "RunContext", "SaveSpec"]
