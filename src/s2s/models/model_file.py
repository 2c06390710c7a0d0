"""The exported model file: weights plus everything needed to rebuild and check the model.

``models/model.pt`` holds only plain types and tensors, so it loads with ``weights_only=True``
(no code runs when a file from elsewhere is opened).  It records the SentencePiece model's hash:
a model given a different vocabulary fails with a clear message instead of a shape error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from s2s.common.io import InputError, atomic_path, sha256_file
from s2s.models.build import build_model
from s2s.models.seq2seq import Seq2Seq

FORMAT_VERSION = 1


def save_model_file(
    path: str | Path,
    state_dict: dict[str, torch.Tensor],
    model_cfg: dict[str, Any],
    vocab_size: int,
    spm_model: str | Path,
    extra: dict[str, Any] | None = None,
    spm_sha256: str | None = None,
) -> None:
    """``spm_sha256``: the vocabulary the weights were trained with (default: ``spm_model``'s sha256)."""
    payload = {
        "format": FORMAT_VERSION,
        "model_config": model_cfg,
        "vocab_size": vocab_size,
        "spm_sha256": spm_sha256 or sha256_file(spm_model),
        "state_dict": {k: v.detach().cpu().clone() for k, v in state_dict.items()},
        "meta": extra or {},
    }
    # saved through a file object: torch.save(path) names the zip's inner folder after the (random)
    # temporary file name, which would make identical trainings give different model files
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(payload, fh)


def load_model_file(path: str | Path, spm_model: str | Path | None = None) -> tuple[Seq2Seq, dict[str, Any]]:
    """Rebuild the model from its file; checks the vocabulary and the architecture match."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: model file not found (run the train stage first)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure is a bad file
        raise InputError(f"{path}: not a readable model file ({err})") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
        raise InputError(f"{path}: not a seq2seq-pipeline model file (format {payload.get('format')!r})")
    if spm_model is not None:
        actual = sha256_file(spm_model)
        if actual != payload["spm_sha256"]:
            raise InputError(
                f"{path} was trained with another SentencePiece vocabulary than {spm_model} "
                f"(sha256 {payload['spm_sha256'][:12]}... vs {actual[:12]}...); use the matching spm.model"
            )
    model = build_model(payload["model_config"], payload["vocab_size"])
    check_state_dict(model, payload["state_dict"], str(path))
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model, payload


def check_state_dict(model: torch.nn.Module, state: dict[str, torch.Tensor], origin: str) -> None:
    """Raise a readable error when weights do not fit the model built from the config."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs config {tuple(expected[k].shape)}"
        for k in sorted(set(expected) & set(state))
        if state[k].shape != expected[k].shape
    ]
    if missing or unexpected or shapes:
        lines = [f"{origin}: weights do not match the model config"]
        if missing:
            lines.append(f"  missing: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            lines.append(f"  unexpected: {', '.join(unexpected[:5])}{' ...' if len(unexpected) > 5 else ''}")
        lines.extend(f"  shape {s}" for s in shapes[:5])
        raise InputError("\n".join(lines))
