"""Which cached entries make room when the cache needs it: a small interface and the default policy.

The cache hands a policy only entries it may evict (none in use), and evicts what the policy yields,
in that order, one at a time, until the bytes needed fit: a policy only orders, the cache counts (it
knows which weights are shared, and that data derived from a model goes with it). The same policy
picks which entries leave the device when another one needs its room there."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol


class CachePolicy(Protocol):
    def victims(self, entries: Sequence, needed_bytes: int, budget: int) -> Iterable:
        """Entries (each with .key, .kind, .bytes, .last_used) to evict, first to go first."""


class LeastRecentlyUsed:
    """The entry used longest ago goes first: what ComfyUI's and InvokeAI's model caches do."""

    def victims(self, entries: Sequence, needed_bytes: int, budget: int) -> Iterable:
        return sorted(entries, key=lambda entry: entry.last_used)
