"""The workers' request router (--workers ray): Serve's multiplex routing by checkpoint, then, among the workers
that hold the checkpoint, those that ran the job's LoRA set lately first (modules/workers/lora_sets.py).

It runs in the front end's process (in the deployment handle), on Serve's public request-router interface
(ray.serve.request_router, Ray 2.60). Imported only with --workers ray."""
from __future__ import annotations

from ray.serve.request_router import FIFOMixin, MultiplexMixin, PendingRequest, RequestRouter, RunningReplica

from modules.workers.lora_sets import ranked_by_lora_set


class CheckpointRouter(FIFOMixin, MultiplexMixin, RequestRouter):
    async def choose_replicas(self, candidate_replicas: list[RunningReplica],
                              pending_request: PendingRequest | None = None) -> list[list[RunningReplica]]:
        if pending_request is None or not pending_request.metadata.multiplexed_model_id:
            return [candidate_replicas]
        # Serve's order: the workers holding the checkpoint; when none has room, the ones holding fewest; then all.
        ids = self.apply_multiplex_routing(pending_request=pending_request)
        replicas = [self.curr_replicas[i] for i in ids if i in self.curr_replicas]
        args = pending_request.args
        payload = args[0] if args and isinstance(args[0], dict) else {}
        return ranked_by_lora_set(replicas, pending_request.metadata.multiplexed_model_id,
                                  payload.get("lora_set", ""))
