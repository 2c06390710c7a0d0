"""The Joey NMT 2.3.0 peer as the side-by-side benchmarks run it: where it lives, its YAMLs (the
peer's RNN; our Transformer recipe in Joey's terms, checked against conf/), what it needs installed,
and the thread settings of a child process (bench_joey.py, bench_joey_decode.py)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from s2s.common.io import InputError, write_json_atomic

ROOT = Path(__file__).resolve().parents[1]
PEER = ROOT.parent / "shared" / "peers" / "joeynmt"
PEER_WORK = "/tmp/joeypeer"  # the prefix of every path in the peer YAMLs
# the Joey YAML of each model: the peer's own RNN (in --peer), and our Transformer recipe
# translated into Joey's keys (beside this file; the peer's data, vocabulary and paths)
JOEY_TRANSFORMER_YAML = Path(__file__).resolve().parent / "joey_transformer_multi30k_ende.yaml"
# Joey key (dotted path in its YAML) <- our key (dotted path in the composed config), equal in value
# for --model transformer; Joey has no counterpart of our attention_dropout and hidden_dropout
# (its one ``dropout`` per stack also drops there: the YAML's header says so)
TRANSFORMER_KEYS = (
    *(
        (f"model.{side}.{joey}", f"model.{side}.{ours}")
        for side in ("encoder", "decoder")
        for joey, ours in (
            ("num_layers", "num_layers"),
            ("num_heads", "num_heads"),
            ("hidden_size", "hidden_size"),
            ("ff_size", "ff_size"),
            ("dropout", "dropout"),
            ("embeddings.dropout", "emb_dropout"),
        )
    ),
    ("model.encoder.embeddings.embedding_dim", "model.emb_size"),
    ("model.decoder.embeddings.embedding_dim", "model.emb_size"),
    ("model.tied_embeddings", "model.share_embeddings"),
    ("model.tied_softmax", "model.tie_output"),
    ("training.label_smoothing", "train.label_smoothing"),
    ("training.batch_size", "train.batch.max_sentences"),
    ("training.learning_rate", "optim.lr"),
    ("training.adam_betas", "optim.betas"),
    ("training.learning_rate_warmup", "optim.warmup_steps"),
    ("training.learning_rate_min", "optim.min_lr"),
    ("training.clip_grad_norm", "trainer.gradient_clip_val"),
    ("testing.beam_size", "decode.beam_size"),
    ("testing.beam_alpha", "decode.length_penalty"),  # both GNMT's ((5 + len) / 6) ** alpha
)
# Joey value <- what ours must be for it to mean the same (ours: pre-norm, ReLU, scaled embeddings,
# token-normalised loss, always); these Joey values are fixed, ours are read
TRANSFORMER_FIXED = (
    ("model.encoder.type", "transformer", None, None),
    ("model.decoder.type", "transformer", None, None),
    ("model.encoder.layer_norm", "pre", None, None),
    ("model.decoder.layer_norm", "pre", None, None),
    ("model.encoder.embeddings.scale", True, None, None),
    ("model.decoder.embeddings.scale", True, None, None),
    ("training.normalization", "tokens", None, None),
    ("training.batch_type", "sentence", "train.batch.max_tokens", None),
    # Joey 2.3.0 has no cosine decay (ours: optim=adam_cosine): the peer's warmup is ours, then the
    # inverse square root; the schedule changes the learning rate, not the tokens/s compared
    ("training.scheduling", "warmupinversesquareroot", None, None),
    ("training.optimizer", "adam", "optim.name", "adam"),
    ("fp16", False, "trainer.precision", "32-true"),
)


class RunError(Exception):
    """A measured job failed or never got far enough."""


def rebase(value: Any, work: str) -> Any:
    """The peer YAML with its /tmp/joeypeer paths moved to ``work``."""
    if isinstance(value, dict):
        return {k: rebase(v, work) for k, v in value.items()}
    if isinstance(value, str) and value.startswith(PEER_WORK):
        return work + value[len(PEER_WORK) :]
    return value


def joey_yaml(peer: Path, model: str = "rnn") -> Path:
    """The Joey YAML of ``model``: the peer's ``rnn_multi30k_ende.yaml``, or our Transformer's."""
    return JOEY_TRANSFORMER_YAML if model == "transformer" else peer / "rnn_multi30k_ende.yaml"


def peer_config(peer: Path, work: Path, model: str = "rnn") -> dict:
    """The Joey YAML of ``model`` (:func:`joey_yaml`) with its paths under ``work``."""
    return rebase(yaml.safe_load(joey_yaml(peer, model).read_text()), str(work))


def _get(cfg: dict, dotted: str) -> Any:
    for key in dotted.split("."):
        cfg = cfg[key]
    return cfg


def recipe_mismatches(ours: dict, joey: dict) -> list[str]:
    """Where a Joey Transformer YAML (``joey``, as loaded) is not our composed recipe (``ours``, a
    plain dict of the whole config): one line per differing key, ``[]`` when they agree."""
    out = []
    for joey_key, our_key in TRANSFORMER_KEYS:
        j, o = _get(joey, joey_key), _get(ours, our_key)
        if (list(j) if isinstance(j, (list, tuple)) else j) != (list(o) if isinstance(o, (list, tuple)) else o):
            out.append(f"Joey {joey_key} = {j!r}, ours {our_key} = {o!r}")
    for joey_key, joey_value, our_key, our_value in TRANSFORMER_FIXED:
        if _get(joey, joey_key) != joey_value:
            out.append(f"Joey {joey_key} = {_get(joey, joey_key)!r}, expected {joey_value!r}")
        if our_key is not None and _get(ours, our_key) != our_value:
            out.append(f"ours {our_key} = {_get(ours, our_key)!r}, Joey's {joey_key} means {our_value!r}")
    return out


def check_peer(peer: Path, work: Path, data_files: tuple[str, ...]) -> None:
    """Raise InputError naming the first missing piece of the peer and the command that creates it."""
    run_sh = peer / "run.sh"
    setup = f"WORK={work} bash {run_sh} setup"
    prepare = f"WORK={work} bash {run_sh} prepare"
    if not (peer / "rnn_multi30k_ende.yaml").is_file():
        raise InputError(f"Joey peer config missing: {peer / 'rnn_multi30k_ende.yaml'} (pass --peer)")
    python = work / "venv" / "bin" / "python"
    if not python.is_file():
        raise InputError(f"Joey NMT venv missing: {python} (create it with: {setup})")
    if not list((work / "venv" / "lib").glob("python*/site-packages/joeynmt/__init__.py")):
        raise InputError(f"joeynmt not installed in {work / 'venv'} (install it with: {setup})")
    for need in ("pylib/sentencepiece", *data_files, "data/vocab.txt", "data/spm8k.model"):
        if not (work / need).exists():
            raise InputError(f"Joey data missing: {work / need} (create it with: {prepare})")


def check_prepared(data: Path, files: tuple[str, ...]) -> None:
    """Raise InputError naming the first of our prepared files missing from ``data``."""
    for need in files:
        if not (data / need).is_file():
            raise InputError(
                f"our prepared data missing: {data / need} "
                "(run the preprocess stage, `dvc repro preprocess`, or pass --data)"
            )


def thread_env(threads: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment with the BLAS/OpenMP thread count set (and ``extra``)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    env.update(extra or {})
    return env


def measure_and_report(
    args: argparse.Namespace, measure: Callable[[argparse.Namespace], dict], show: Callable[[dict], None]
) -> int:
    """Run ``measure``, write its report to ``args.out`` atomically with the wall time, print it.

    Exit codes: 0 done, 1 a measured job failed (:class:`RunError`, one line on stderr).
    """
    start = time.perf_counter()
    try:
        report = measure(args)
    except RunError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    report["wall_seconds"] = round(time.perf_counter() - start, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out, report)
    show(report)
    print(f"written to {args.out} ({report['wall_seconds']:.0f} s)")
    return 0
