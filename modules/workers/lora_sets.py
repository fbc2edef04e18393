"""LoRA sets in the routing of --workers ray: a job for checkpoint A with LoRA set L goes to a worker that holds A
(Serve's multiplexing, keyed by the checkpoint alone) and, among those, preferably to one that has L attached.

Why not one multiplexed model per checkpoint + LoRA set: Serve's per-worker LRU would then count a checkpoint once
per LoRA set, and dropping one (checkpoint, set) key could drop the checkpoint that another key still uses.
So the checkpoint stays the one multiplexed model (models_per_replica checkpoints per worker, as without LoRAs),
adapters stay attached to it between jobs (modules/models/lora_adapters.py, bounded there), each worker tells the
router which sets it ran lately on which checkpoint (Serve's routing stats), and the router ranks the workers
that hold the checkpoint by that (modules/workers/router.py). Plain Python: no ray import here."""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

SETS_PER_MODEL = 4  # LoRA sets a worker remembers per checkpoint (their adapters stay attached: 8 per module)
ROUTING_STATS_KEY = "lora_sets"


def lora_set_of(request) -> str:
    """The LoRA files a job attaches (its prompt's, and the hires pass's), as one name: '' for none. Weights are
    left out: changing a weight costs nothing once the adapter is attached."""
    loras = [*getattr(request, "loras", ()), *getattr(request, "hr_loras", ())]
    return "|".join(sorted({str(lora.path) for lora in loras}))


def entry(model_key: str, lora_set: str) -> str:
    """One (checkpoint key, LoRA set) as the routing stats carry it."""
    return f"{model_key}\n{lora_set}"


class AttachedSets:
    """The LoRA sets a worker ran lately, per multiplexed checkpoint key (most recently used last)."""

    def __init__(self, per_model: int = SETS_PER_MODEL):
        self.per_model = per_model
        self._sets: dict[str, OrderedDict[str, None]] = {}

    def has(self, model_key: str, lora_set: str) -> bool:
        return lora_set in self._sets.get(model_key, ())

    def note(self, model_key: str, lora_set: str) -> None:
        if not lora_set:
            return
        sets = self._sets.setdefault(model_key, OrderedDict())
        sets[lora_set] = None
        sets.move_to_end(lora_set)
        while len(sets) > self.per_model:
            sets.popitem(last=False)

    def forget(self, model_key: str) -> None:
        """The checkpoint left this worker: its adapters went with it."""
        self._sets.pop(model_key, None)

    def shown(self) -> dict[str, list[str]]:
        """Per checkpoint key, its LoRA sets as users name them (file names, "+" between), least recently used first."""
        return {key: ["+".join(Path(path).stem for path in s.split("|")) for s in sets]
                for key, sets in self._sets.items() if sets}

    def routing_stats(self) -> dict:
        return {ROUTING_STATS_KEY: [entry(key, s) for key, sets in self._sets.items() for s in sets]}


def ranked_by_lora_set(replicas: list, model_key: str, lora_set: str) -> list[list]:
    """`replicas` (each with .routing_stats, as Serve's RunningReplica) in two ranks: those that ran this LoRA set
    on this checkpoint lately, then the rest. Without LoRAs one rank."""
    if not lora_set:
        return [list(replicas)]
    wanted = entry(model_key, lora_set)
    attached = [r for r in replicas if wanted in ((r.routing_stats or {}).get(ROUTING_STATS_KEY) or ())]
    return [attached, [r for r in replicas if r not in attached]]
