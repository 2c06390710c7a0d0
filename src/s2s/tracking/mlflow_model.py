"""The trained translator as an MLflow Model (``pyfunc`` flavor): served, registered, loaded anywhere.

``mlflow.pyfunc.load_model(uri).predict(["A man is riding a bicycle."])`` and ``mlflow models serve``
both run the project's own :class:`~s2s.inference.translator.Translator` (the same code as
``src/translate.py``), so every way of translating gives the same words. The model folder holds
``model.pt``, ``spm.model`` and the decoding settings (``translator.json``) as artifacts and the
``s2s`` package as code (``code_paths``), so it loads where the project is not installed. This
module imports neither Lightning nor Hydra.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd

# the decoding options a request may set (MLflow params), as (name in the request, SearchOptions field)
PARAMS = (
    ("beam_size", "beam_size"),
    ("max_len_a", "max_len_a"),
    ("max_len_b", "max_len_b"),
    ("alpha", "length_penalty"),
)
INPUT_COLUMN = "text"
INPUT_EXAMPLE = ["A man is riding a bicycle.", "Two dogs play in the snow."]
ARTIFACT_PATH = "model"  # runs:/<run id>/model


class Seq2SeqTranslator(mlflow.pyfunc.PythonModel):
    """Text in, text out: one translation per input line, decoded with the logged decode config
    unless a request's params (beam_size, max_len_a, max_len_b, alpha) say otherwise."""

    def load_context(self, context: Any) -> None:
        from s2s.inference.translator import Translator

        config = json.loads(Path(context.artifacts["settings"]).read_text(encoding="utf-8"))
        self.translator = Translator.load(
            context.artifacts["model"],
            context.artifacts["spm"],
            config.get("decode", {}),
            config.get("target_lang"),
            int(config.get("batch_size", 64)),
            config.get("max_src_pieces"),
        )

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> list[str]:
        lines = input_lines(model_input)
        translator = self.translator
        base = translator.opts
        changes = {field: (params or {})[name] for name, field in PARAMS if (params or {}).get(name) is not None}
        translator.opts = dataclasses.replace(base, **changes, n_best=1)
        try:
            return [nbest[0][0] if nbest else "" for nbest in translator.translate(lines)]
        finally:
            translator.opts = base


def input_lines(model_input: Any) -> list[str]:
    """The lines of a request: a DataFrame's ``text`` column (or its only column), a list, a string."""
    if hasattr(model_input, "columns"):
        column = INPUT_COLUMN if INPUT_COLUMN in model_input.columns else model_input.columns[0]
        values = model_input[column].tolist()
    elif isinstance(model_input, str):
        values = [model_input]
    elif isinstance(model_input, Mapping):
        values = list(model_input.get(INPUT_COLUMN, []))
    else:
        values = list(model_input)
    return ["" if v is None else str(v).replace("\r", " ").replace("\n", " ") for v in values]


def signature(decode_cfg: Mapping[str, Any]) -> Any:
    """Text in (column ``text``), text out; the decoding options as params, defaulting to training's."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    defaults = {name: decode_cfg.get(field) for name, field in PARAMS}
    return ModelSignature(
        inputs=Schema([ColSpec("string", INPUT_COLUMN)]),
        outputs=Schema([ColSpec("string")]),
        params=ParamSchema(
            [
                ParamSpec("beam_size", "long", int(defaults["beam_size"])),
                ParamSpec("max_len_a", "double", float(defaults["max_len_a"])),
                ParamSpec("max_len_b", "long", int(defaults["max_len_b"])),
                ParamSpec("alpha", "double", float(defaults["alpha"])),
            ]
        ),
    )


def project_requirements(pyproject: str | Path) -> list[str]:
    """The project's own dependencies (pyproject.toml), which a served model needs to run."""
    with open(pyproject, "rb") as fh:
        return list(tomllib.load(fh)["project"]["dependencies"])


def log_model(
    model_file: str | Path,
    spm_file: str | Path,
    decode_cfg: Mapping[str, Any],
    pyproject: str | Path,
    target_lang: str | None = None,
    max_src_pieces: int | None = None,
    registered_model_name: str | None = None,
) -> Any:
    """Log the model into the active run as ``runs:/<run id>/model`` (and register a version)."""
    # decoding settings as an artifact, not model_config: MLflow would log model_config as run
    # params a second time (decode/beam_size beside decode.beam_size)
    decode = {k: v for k, v in dict(decode_cfg).items() if k not in ("device", "compile")}
    settings = {"decode": decode, "target_lang": target_lang, "max_src_pieces": max_src_pieces}
    with tempfile.TemporaryDirectory(prefix="s2s-mlflow-") as tmp:
        settings_file = Path(tmp) / "translator.json"
        settings_file.write_text(json.dumps(settings, indent=1), encoding="utf-8")
        package = Path(tmp) / "s2s"  # the package as the model's code, without byte-code caches
        shutil.copytree(Path(__file__).resolve().parents[1], package, ignore=shutil.ignore_patterns("__pycache__"))
        return mlflow.pyfunc.log_model(
            name=ARTIFACT_PATH,
            python_model=Seq2SeqTranslator(),
            artifacts={"model": str(model_file), "spm": str(spm_file), "settings": str(settings_file)},
            code_paths=[str(package)],
            signature=signature(decode_cfg),
            input_example=pd.DataFrame({INPUT_COLUMN: INPUT_EXAMPLE}),
            pip_requirements=project_requirements(pyproject),
            registered_model_name=registered_model_name,
        )
