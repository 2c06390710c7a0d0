"""Weights read from Lightning checkpoints: averaging for export, and ``train.init_from``.

Kept out of :mod:`s2s.models.model_file` (the model file that evaluate and translate read) because
these read the training side's checkpoint layout and its stamp (:data:`s2s.training.resume.CKPT_KEY`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from s2s.common.io import InputError, sha256_file
from s2s.training.resume import CKPT_KEY


def average_state_dicts(paths: list[str | Path]) -> dict[str, torch.Tensor]:
    """Mean of the model weights of several Lightning checkpoints (checkpoint averaging)."""
    total: dict[str, torch.Tensor] = {}
    for p in paths:
        state = lightning_model_state(p)
        for k, v in state.items():
            total[k] = (
                total[k] + v.double()
                if k in total and v.is_floating_point()
                else v.double()
                if v.is_floating_point()
                else v
            )
    return {k: (v / len(paths)).float() if v.is_floating_point() else v for k, v in total.items()}


def lightning_model_state(path: str | Path) -> dict[str, torch.Tensor]:
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    prefix = "model."
    return {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}


def load_init_weights(path: str | Path, spm_model: str | Path) -> dict[str, torch.Tensor]:
    """Weights to start from (``train.init_from``: a model.pt or a Lightning .ckpt), checked readable
    and trained with the same SentencePiece model (same size is not enough: other pieces, other ids)."""
    option = f"train.init_from={path}"
    if not Path(path).is_file():
        raise InputError(f"{option}: file not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure is a bad file
        raise InputError(f"{option}: not a readable model file or checkpoint ({type(err).__name__})") from err
    if not isinstance(payload, dict) or not isinstance(payload.get("state_dict"), dict):
        raise InputError(f"{option}: not a seq2seq-pipeline model file or Lightning checkpoint")
    is_ckpt = "format" not in payload
    recorded = payload.get(CKPT_KEY, {}).get("spm_sha256") if is_ckpt else payload.get("spm_sha256")
    actual = sha256_file(spm_model)
    if recorded is not None and recorded != actual:
        raise InputError(
            f"{option} was trained with another SentencePiece vocabulary than {spm_model} "
            f"(sha256 {recorded[:12]}... vs {actual[:12]}...)"
        )
    if not is_ckpt:
        return payload["state_dict"]
    prefix = "model."
    return {k[len(prefix) :]: v for k, v in payload["state_dict"].items() if k.startswith(prefix)}
