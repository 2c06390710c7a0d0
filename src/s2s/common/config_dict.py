"""Composed configs as plain data: what is hashed, compared, logged and saved in a model file.

OmegaConf nodes carry interpolations and node types that ``json.dumps``, ``torch.save`` and MLflow
do not take; every stage turns them into resolved dicts and lists the same way, here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import OmegaConf


def plain(cfg: Any) -> Any:
    """A config node as resolved built-in dicts and lists; anything else unchanged."""
    return OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else cfg


def flatten(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level with dotted keys: ``{"model.encoder.hidden_size": 256, ...}``."""
    out: dict[str, Any] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out
