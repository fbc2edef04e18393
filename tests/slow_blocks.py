"""Slow model blocks for tests: a step (or a decode) that takes seconds on a tiny model, as it would on a
large image, so a test can see whether a job stops inside it."""
from __future__ import annotations

import time

import pytest


class SlowBlocks:
    """Makes every top-level block of a module slow, counting the calls begun; restores them on exit."""

    def __init__(self, model, seconds: float, on_call=None):
        self.blocks = [*getattr(model, "down_blocks", ()), model.mid_block, *model.up_blocks]
        self.seconds, self.on_call, self.calls = seconds, on_call, 0
        self.patch = pytest.MonkeyPatch()

    def __enter__(self):
        for block in self.blocks:
            self.patch.setattr(block, "forward", self._slow(block.forward))
        return self

    def __exit__(self, *exc):
        self.patch.undo()

    def _slow(self, forward):
        def slow(*args, **kwargs):
            self.calls += 1
            if self.on_call is not None:
                self.on_call(self.calls)
            time.sleep(self.seconds)
            return forward(*args, **kwargs)
        return slow
