"""The trained translator as an MLflow Model (``pyfunc`` flavor): served, registered, loaded anywhere.

``mlflow.pyfunc.load_model(uri).predict({"text": ["A man is riding a bicycle."]})`` (or a DataFrame with a
``text`` column; a bare list is refused by the signature) and ``mlflow models serve``
both run the project's own :class:`~s2s.inference.translator.Translator` (the same code as
``src/translate.py``), so every way of translating gives the same words. The model folder holds
``model.pt``, ``spm.model`` and the decoding settings (``translator.json``) as artifacts, the
``s2s`` package as code (``code_paths``), so it loads where the project is not installed, and the
model itself as code (MLflow's models-from-code: ``translator_model.py``, run at load; nothing is
pickled). Its requirements are what translating imports (:data:`INFERENCE_PACKAGES`). This
module imports neither Lightning nor Hydra.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import DEADLINE_EXCEEDED, INVALID_PARAMETER_VALUE

from s2s.common.io import InputError
from s2s.common.numerics import DEFAULT_MKL_BRANCH, apply_numerics, hold_mkl_threads
from s2s.tracking.store import quiet_artifact_progress

log = logging.getLogger(__name__)

# the decoding options a request may set (MLflow params), as (name in the request, SearchOptions field)
PARAMS = (
    ("beam_size", "beam_size"),
    ("max_len_a", "max_len_a"),
    ("max_len_b", "max_len_b"),
    ("alpha", "length_penalty"),
)
# the project's dependencies that loading the model and translating import (Hydra instantiates the
# model's modules; pandas comes with MLflow): the model's requirements, checked by
# tests/e2e/test_mlflow_model.py::test_the_model_requires_what_translating_needs_only
INFERENCE_PACKAGES = ("torch", "sentencepiece", "hydra-core", "omegaconf", "numpy", "mlflow")
# the model's code (MLflow's models-from-code): loading runs it, nothing is unpickled
MODEL_CODE = Path(__file__).with_name("translator_model.py")
INPUT_COLUMN = "text"
INPUT_EXAMPLE = ["A man is riding a bicycle.", "Two dogs play in the snow."]
ARTIFACT_PATH = "model"  # runs:/<run id>/model
# the logged decode settings a request's checks read besides its own params
DECODE_KEYS = ("beam_size", "length_penalty", "max_len_a", "max_len_b", "min_len", "no_repeat_ngram_size", "batch_size")


class RequestError(MlflowException):
    """A request the model refuses, answered in one line: MLflow's scoring server prefixes the
    message with the whole request ("Failed to predict data '<request>'. \\nError: ..."); this
    message stays the line it was created with."""

    def __init__(self, message: str, error_code: int = INVALID_PARAMETER_VALUE) -> None:
        super().__init__(message.splitlines()[0] if message else message, error_code=error_code)

    @property
    def message(self) -> str:
        return self._line

    @message.setter
    def message(self, value: str) -> None:
        if not hasattr(self, "_line"):
            self._line = value


class Seq2SeqTranslator(mlflow.pyfunc.PythonModel):
    """Text in, text out: one translation per input line, decoded with the logged decode config
    unless a request's params (beam_size, max_len_a, max_len_b, alpha) say otherwise.

    The process computes with the run's numerics (applied in :meth:`load_context`, before its first
    tensor operation), every request's params are checked with the CLI's rules (a bad one is an
    HTTP 400 in one line), and under ``mlflow models serve`` a request stops decoding at the
    server's request timeout (``MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT``), when MLflow has answered 504."""

    def load_context(self, context: Any) -> None:
        config = json.loads(Path(context.artifacts["settings"]).read_text(encoding="utf-8"))
        numerics = config.get("numerics") or {"mode": "portable"}  # translate.py's default
        try:
            apply_numerics(
                str(numerics.get("mode", "portable")),
                numerics.get("threads"),
                str(numerics.get("mkl_branch") or DEFAULT_MKL_BRANCH),
            )
        except InputError as err:  # e.g. a process that already computed on other kernels: serve, say so
            log.warning("the run's numerics are not applied (%s); translations may differ from translate.py's", err)
        self.settings = config
        self.translator = _load_translator(config, context.artifacts)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> list[str]:
        deadline = request_deadline()
        changes = request_options(getattr(self, "settings", {}), params or {})
        lines = input_lines(model_input)
        lock = self.__dict__.setdefault("_lock", threading.Lock())
        wait = -1 if deadline is None else max(deadline - time.monotonic(), 0.0)
        if not lock.acquire(timeout=wait):  # requests decode one at a time (they share the model)
            raise RequestError("the request waited past its deadline for the one before it", DEADLINE_EXCEEDED)
        translator = self.translator
        base = translator.opts
        translator.opts = dataclasses.replace(base, **changes, n_best=1)
        try:
            hold_mkl_threads()  # a server may answer in a thread other than the one that loaded the model
            with decoding_deadline(translator.model, deadline):
                return [nbest[0][0] if nbest else "" for nbest in translator.translate(lines)]
        finally:
            translator.opts = base
            lock.release()


def _load_translator(config: Mapping[str, Any], artifacts: Mapping[str, str]) -> Any:
    from s2s.inference.translator import Translator

    return Translator.load(
        artifacts["model"],
        artifacts["spm"],
        config.get("decode", {}),
        config.get("target_lang"),
        int(config.get("batch_size", 64)),
        config.get("max_src_pieces"),
    )


def request_options(settings: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """The SearchOptions a request's params change, checked with the CLI's rules
    (:mod:`s2s.common.options`: beam size, lengths against the source cap, length penalty);
    raises :class:`RequestError` naming every bad param as the request names it."""
    from omegaconf import OmegaConf

    from s2s.common.options import check_config

    changes = {}
    for name, field in PARAMS:
        value = params.get(name)
        if value is None:
            continue
        changes[field] = value.item() if hasattr(value, "item") else value  # numpy scalars from MLflow
    decode = {k: v for k, v in dict(settings.get("decode") or {}).items() if k in DECODE_KEYS}
    cfg: dict[str, Any] = {"decode": {**decode, **changes, "n_best": 1}}
    if settings.get("max_src_pieces") is not None:
        cfg["translate"] = {"max_src_pieces": settings["max_src_pieces"]}
    problems = check_config(OmegaConf.create(cfg), ["decode"])
    if problems:
        message = "; ".join(problems)
        for name, field in PARAMS:
            message = message.replace(f"decode.{field}", name)
        raise RequestError(message)
    return changes


def request_deadline() -> float | None:
    """When a request must stop decoding: MLflow's scoring server answers 504 after
    ``MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT`` seconds (it sets the variable for its workers); None
    outside a server unless the variable is set."""
    timeout = os.environ.get("MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT")
    if timeout is None:
        if os.environ.get("_MLFLOW_IS_IN_SERVING_ENVIRONMENT", "").lower() != "true":
            return None
        from mlflow.environment_variables import MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT

        timeout = MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT.get()
    return time.monotonic() + float(timeout)


@contextlib.contextmanager
def decoding_deadline(model: Any, deadline: float | None) -> Iterator[None]:
    """Every decoder step checks the deadline first: a request past it stops computing (its
    memory is freed) with a :class:`RequestError` (HTTP 504)."""
    if deadline is None:
        yield
        return
    own = model.__dict__.get("decode_step")  # a compiled step (decode.compile) lives on the instance
    step = model.decode_step

    def checked(*args: Any, **kwargs: Any) -> Any:
        if time.monotonic() > deadline:
            raise RequestError("the request ran past the server's request timeout; decoding stopped", DEADLINE_EXCEEDED)
        return step(*args, **kwargs)

    model.__dict__["decode_step"] = checked
    try:
        yield
    finally:
        if own is None:
            del model.__dict__["decode_step"]
        else:
            model.__dict__["decode_step"] = own


def input_lines(model_input: Any) -> list[str]:
    """The lines of a request, one translation each, whatever form MLflow hands over.

    A DataFrame's ``text`` column (or its only column); a cell that holds a list or an array is
    several lines (MLflow turns ``{"text": [s1, s2]}`` into one row whose cell is the list); a dict
    of lists, a list, a string."""
    if hasattr(model_input, "columns"):
        column = INPUT_COLUMN if INPUT_COLUMN in model_input.columns else model_input.columns[0]
        values = model_input[column].tolist()
    elif isinstance(model_input, str):
        values = [model_input]
    elif isinstance(model_input, Mapping):
        value = model_input.get(INPUT_COLUMN, [])
        values = [value] if isinstance(value, str) else value
    else:
        values = list(model_input)
    lines: list[str] = []
    for value in values:
        if hasattr(value, "tolist") and not isinstance(value, str):  # a numpy array or scalar
            value = value.tolist()
        if isinstance(value, list | tuple):
            lines.extend(_line(v) for v in value)
        else:
            lines.append(_line(value))
    return lines


def _line(value: Any) -> str:
    return "" if value is None else str(value).replace("\r", " ").replace("\n", " ")


def signature(decode_cfg: Mapping[str, Any]) -> Any:
    """Text in (column ``text``), text out; the decoding options as params, defaulting to training's.

    The named column keeps every ``/invocations`` body working (``dataframe_split``,
    ``dataframe_records``, ``inputs`` as a dict of lists, a list or records; an unnamed one refused
    ``{"inputs": {"text": [...]}}``); in process, a dict of lists or a DataFrame, not a bare list."""
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


def inference_requirements(pyproject: str | Path) -> list[str]:
    """The project's dependencies (``pyproject.toml``, with their version ranges) that loading the
    model and translating import: :data:`INFERENCE_PACKAGES`, not DVC, DVCLive, Lightning,
    matplotlib or the scorers (training's and evaluation's)."""
    from packaging.requirements import Requirement

    with open(pyproject, "rb") as fh:
        dependencies = tomllib.load(fh)["project"]["dependencies"]
    return [d for d in dependencies if Requirement(d).name.lower() in INFERENCE_PACKAGES]


def log_model(
    model_file: str | Path,
    spm_file: str | Path,
    decode_cfg: Mapping[str, Any],
    pyproject: str | Path,
    target_lang: str | None = None,
    max_src_pieces: int | None = None,
    registered_model_name: str | None = None,
    numerics: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
) -> Any:
    """Log the model into the active run as ``runs:/<run id>/model`` (and register a version).
    ``numerics``: the run's ``numerics`` section, applied by the loaded model before it computes;
    ``tags``: the logged model's and the registered version's."""
    # decoding settings as an artifact, not model_config: MLflow would log model_config as run
    # params a second time (decode/beam_size beside decode.beam_size)
    decode = {k: v for k, v in dict(decode_cfg).items() if k not in ("device", "compile")}
    settings = {
        "decode": decode,
        "target_lang": target_lang,
        "max_src_pieces": max_src_pieces,
        "numerics": dict(numerics) if numerics is not None else {"mode": "portable"},
    }
    with tempfile.TemporaryDirectory(prefix="s2s-mlflow-") as tmp:
        settings_file = Path(tmp) / "translator.json"
        settings_file.write_text(json.dumps(settings, indent=1), encoding="utf-8")
        package = Path(tmp) / "s2s"  # the package as the model's code, without byte-code caches
        shutil.copytree(Path(__file__).resolve().parents[1], package, ignore=shutil.ignore_patterns("__pycache__"))
        quiet_artifact_progress()  # MLflow loads the model once to check the input example
        return mlflow.pyfunc.log_model(
            name=ARTIFACT_PATH,
            python_model=str(MODEL_CODE),  # models-from-code: no pickled object (nor CloudPickle's warning)
            artifacts={"model": str(model_file), "spm": str(spm_file), "settings": str(settings_file)},
            code_paths=[str(package)],
            signature=signature(decode_cfg),
            input_example=pd.DataFrame({INPUT_COLUMN: INPUT_EXAMPLE}),
            pip_requirements=inference_requirements(pyproject),
            registered_model_name=registered_model_name,
            tags=dict(tags) if tags else None,
        )
