"""Per-rank random-generator state for exact resume (torch CPU and CUDA, numpy, Python).

Dropout draws from the global generators (CPU, and the rank's CUDA device), which differ between
ranks as soon as their batches differ, so a checkpoint holds every rank's states, indexed by
global rank, and each rank restores its own.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


def collect_rng_states(device: torch.device) -> dict[str, Any]:
    """This process's random generators (torch CPU, numpy, Python, and CUDA on ``device``).

    Only the rank's own CUDA device is saved (not ``get_rng_state_all``): the other devices'
    generators are unused by this rank, and a resume may see a different number of GPUs.
    Plain types and tensors only, so checkpoints load with ``weights_only=True``.
    """
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "python": list(random.getstate()[1]),
    }


def restore_rng_states(states: dict[str, Any], device: torch.device) -> None:
    """Inverse of :func:`collect_rng_states` (states saved without numpy or CUDA skip those)."""
    torch.set_rng_state(states["torch"])
    random.setstate((3, tuple(states["python"]), None))
    if states.get("numpy") is not None:
        kind, keys, pos, has_gauss, cached = states["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if states.get("cuda") is not None and device.type == "cuda":
        torch.cuda.set_rng_state(states["cuda"], device)


def gather_rng_states(device: torch.device, world_size: int) -> dict[str, Any]:
    """Every rank's states as the checkpoint stores them (``{"per_rank": [...]}``); a collective
    under DDP, so every rank must call it (Lightning's ``on_save_checkpoint`` runs on all ranks)."""
    local = collect_rng_states(device)
    states = [local]
    if world_size > 1 and dist.is_available() and dist.is_initialized():
        states = [None] * world_size
        dist.all_gather_object(states, local)
    return {"per_rank": states}


def restore_rank_states(saved: dict[str, Any], rank: int, device: torch.device) -> None:
    """Restore this rank's states from a checkpoint's ``rng_states``; a rank the checkpoint does
    not cover (it was written by fewer ranks) keeps fresh ones, with a warning."""
    per_rank = saved.get("per_rank", [saved])  # older checkpoints: rank 0's CPU and Python only
    if rank >= len(per_rank):
        log.warning(
            "rank %d: the checkpoint holds random states for %d rank(s) only; this rank continues "
            "with fresh ones (dropout differs from an uninterrupted run)",
            rank,
            len(per_rank),
        )
        return
    restore_rng_states(per_rank[rank], device)
