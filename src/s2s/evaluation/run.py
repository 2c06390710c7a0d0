"""The evaluate stage in named steps: load the model and the sets, decode and score every set, the
robustness curve, publish ``reports/``, log to MLflow.

The outputs form one set, ``reports/eval/`` (metrics.json: every score; report.json: signatures,
method, counts, provenance; translations/<test set>.tsv, robustness.json, attention/), built in a
temporary folder and published in one rename: a killed or failed run leaves the previous set whole,
and no image of an earlier run outlives it. ``reports/metrics.json``, the file DVC reads as metrics
(the primary test set's BLEU, chrF, tokenized BLEU), is written in full beside the set before either
is published and renamed into place right after it: a failed run keeps both old files, a kill
between the two renames leaves the new set without a summary (never a stale one).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from s2s.common.config_guard import check_params_file
from s2s.common.io import InputError, atomic_path, check_writable_dir, write_json_atomic
from s2s.common.numerics import provenance_tags, stage_provenance
from s2s.data.download.sources import CorpusConfig
from s2s.data.encoded import read_eval_records
from s2s.data.testsets import TestRecord, read_test_records
from s2s.data.vocab import Vocabulary
from s2s.evaluation.reports import mlflow_metrics, split_scores
from s2s.evaluation.scoring import (
    as_test_records,
    attention_heatmap,
    encode_sources,
    robustness_curve,
    score_records,
    write_translations,
)
from s2s.inference.batching import translate_ids
from s2s.inference.search import SearchOptions
from s2s.inference.translator import load_decoding_model
from s2s.models.seq2seq import Seq2Seq
from s2s.tracking import evaluation_runs, runs, store

log = logging.getLogger("evaluate")

CONF = Path(__file__).resolve().parents[3] / "conf"
# decode settings that cannot change the scored translations: the batch size (the search is
# batch-invariant, tests/unit/inference/test_search.py) and n_best (only the top-1 is scored, and
# it does not depend on n_best); every other decode key names the evaluation
DECODE_KEYS_IGNORED = ("batch_size", "n_best")


def _decode_settings(decode: Any) -> dict[str, Any]:
    values = OmegaConf.to_container(decode, resolve=True) if OmegaConf.is_config(decode) else dict(decode)
    return {k: v for k, v in values.items() if k not in DECODE_KEYS_IGNORED}


def default_decode(cfg: DictConfig) -> dict[str, Any] | None:
    """The decode section as ``decode=<name>`` gives it, with no ``decode.*`` override: the group's
    file (``conf/decode/<name>.yaml``) and the numerics' own decoding precision. None when the
    group has no file here (a decode config of the user's own)."""
    group = CONF / "decode" / f"{cfg.decode.name}.yaml"
    if not group.is_file():
        return None
    merged = OmegaConf.load(group)
    numerics = CONF / "numerics" / f"{cfg.numerics.mode}.yaml" if "numerics" in cfg else None
    if numerics is not None and numerics.is_file():
        merged = OmegaConf.merge(merged, OmegaConf.load(numerics).get("decode") or {})
    return _decode_settings(merged)


def decode_changes(cfg: DictConfig) -> dict[str, Any]:
    """``{key: value}`` of the decode settings that differ from :func:`default_decode`."""
    settings, default = _decode_settings(cfg.decode), default_decode(cfg) or {}
    return {k: v for k, v in settings.items() if k not in default or str(default[k]) != str(v)}


def evaluation_name(cfg: DictConfig) -> str:
    """The evaluation's name in MLflow: ``<split>/<decode name><beam>`` (``test/beam5``) for the
    decode group's own settings, then ``-<8 hex digits>`` of the whole decode section (less
    :data:`DECODE_KEYS_IGNORED`) when any setting differs, so an evaluation with other decoding
    never takes the default's metric names in the training run (the beam size is in the readable
    part: ``decode.beam_size=2`` alone gives ``test/beam2``)."""
    base = f"{cfg.evaluate.split}/{cfg.decode.name}{cfg.decode.beam_size}"
    if default_decode(cfg) is not None and not set(decode_changes(cfg)) - {"beam_size"}:
        return base
    text = json.dumps(_decode_settings(cfg.decode), sort_keys=True, default=str)
    return f"{base}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


@dataclass
class Evaluation:
    """What the steps hand on: the model and sets in, then hypotheses, scores and the files' contents."""

    cfg: DictConfig
    model: Seq2Seq
    vocab: Vocabulary
    sets: dict[str, list[TestRecord]]  # primary first
    forward: str  # the data config's direction, e.g. "en-de"
    opts: SearchOptions
    hypotheses: dict[str, list[str]] = field(default_factory=dict)
    scores: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    primary_ids: list[list[int]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    numbers: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    curve: list[dict[str, Any]] = field(default_factory=list)

    @property
    def primary(self) -> str:
        return next(iter(self.sets))


def run_evaluation(cfg: DictConfig) -> dict[str, float]:
    """Evaluate the trained model on every test set (or the validation set); returns DVC's metrics."""
    check_writable_dir(cfg.paths.reports_dir, "paths.reports_dir")  # before the minutes of decoding
    ev = load(cfg)
    decode_and_score(ev)
    measure_robustness(ev)
    publish(ev, Path(cfg.paths.reports_dir))
    log_to_mlflow(ev, Path(cfg.paths.reports_dir))
    log_summary(ev)
    return ev.metrics


def load_sets(prepared: Path, dataset: CorpusConfig, split: str) -> dict[str, list[TestRecord]]:
    """The sets to score, primary first: every test set of the data config, or the validation set."""
    if split == "valid":
        return {"val": as_test_records(read_eval_records(prepared / "valid.tsv"))}
    if split != "test":
        raise InputError(f"evaluate.split={split!r}: expected 'test' (every test set) or 'valid'")
    return {name: read_test_records(prepared / "testsets" / f"{name}.jsonl") for name in dataset.test_set_names()}


def load(cfg: DictConfig) -> Evaluation:
    prepared, model_dir = Path(cfg.paths.prepared_dir), Path(cfg.paths.model_dir)
    dataset = CorpusConfig.from_config(cfg.data)
    return Evaluation(
        cfg=cfg,
        vocab=Vocabulary(prepared / "spm.model"),
        model=load_decoding_model(model_dir / "model.pt", prepared / "spm.model", cfg.decode),
        sets=load_sets(prepared, dataset, cfg.evaluate.split),
        forward=f"{dataset.src_lang}-{dataset.tgt_lang}",
        opts=SearchOptions.from_config(cfg.decode),
    )


def decode_and_score(ev: Evaluation) -> None:
    """Translate every set with the configured search, score it, and shape the figures into files."""
    cfg = ev.cfg
    tagged, cap = bool(cfg.preprocess.reverse), cfg.preprocess.filter.max_eval_pieces
    for name, records in ev.sets.items():
        src_ids = encode_sources(ev.vocab, records, tagged, cap)
        hyps = translate_ids(ev.model, src_ids, ev.opts, cfg.decode.batch_size)
        ev.hypotheses[name] = ev.vocab.decode([h[0].tokens for h in hyps])
        ev.scores[name] = score_records(records, ev.hypotheses[name])
        ev.primary_ids = ev.primary_ids or src_ids
    decode = f"{cfg.decode.name} (beam {ev.opts.beam_size})"
    ev.metrics, ev.numbers, ev.report = split_scores(ev.scores, ev.primary, ev.forward, decode)
    ev.report["provenance"] = _provenance(cfg)  # in report.json, not metrics.json: it names this CPU
    # how the weights were made, beside how they were decoded (compare warns on either): the
    # training's provenance from its run link (absent for a model pulled without it)
    trained = runs.read_run_link(Path(cfg.paths.reports_dir) / "train_run.json").get("provenance")
    ev.report["provenance"]["training"] = trained


def measure_robustness(ev: Evaluation) -> None:
    """Greedy BLEU of the primary set's forward direction with its sources noised at each level."""
    cfg = ev.cfg
    records = [r for r in ev.sets[ev.primary] if r.direction == ev.forward]
    ev.curve = robustness_curve(
        ev.model,
        ev.vocab,
        records,
        list(cfg.evaluate.robustness_levels),
        bool(cfg.preprocess.reverse),
        cfg.seed,
        cfg.decode.batch_size,
        cfg.preprocess.filter.max_eval_pieces,
    )


def draw_heatmaps(ev: Evaluation, folder: Path) -> None:
    """Attention heatmaps of the primary set's first ``evaluate.heatmaps`` sources (greedy)."""
    n = min(ev.cfg.evaluate.heatmaps, len(ev.primary_ids))
    lengths = {"max_len_a": ev.opts.max_len_a, "max_len_b": ev.opts.max_len_b}
    opts = SearchOptions(beam_size=1, n_best=1, min_len=0, return_attention=True, **lengths)
    for i, hyp in enumerate(translate_ids(ev.model, ev.primary_ids[:n], opts)):
        h = hyp[0]
        src_pieces = [ev.vocab.id_to_piece(t) for t in ev.primary_ids[i]] + ["</s>"]
        out_pieces = [ev.vocab.id_to_piece(t) for t in h.tokens] + ["</s>"]
        weights = h.attention[: len(out_pieces), : len(src_pieces)]
        attention_heatmap(folder / f"test{i}.png", src_pieces, out_pieces, weights)


def publish(ev: Evaluation, reports: Path) -> None:
    """Write the set and the summary in full first, so a failure (or ``params.yaml`` changed under
    the stage) leaves the old ones as they were; then the old summary goes, the set is renamed, the
    summary renamed (a kill between the renames leaves no summary, never an old one beside a newer
    set). Both are ``persist: true`` in dvc.yaml: DVC leaves them in place until this replaces them."""
    with atomic_path(reports / "metrics.json") as summary:
        with atomic_path(reports / "eval", is_dir=True) as tmp:
            write_json_atomic(tmp / "metrics.json", ev.numbers)
            write_json_atomic(tmp / "report.json", ev.report)
            for name, records in ev.sets.items():
                write_translations(tmp / "translations" / f"{name}.tsv", records, ev.hypotheses[name])
            write_json_atomic(tmp / "robustness.json", {"robustness": ev.curve})
            (tmp / "attention").mkdir()  # exists (empty) for a model without attention: DVC wants every output
            if ev.cfg.evaluate.heatmaps and ev.model.decoder.has_attention:
                draw_heatmaps(ev, tmp / "attention")
            write_json_atomic(summary, ev.metrics)
            check_params_file()  # the config this ran with is still params.yaml's: else nothing is replaced
            (reports / "metrics.json").unlink(missing_ok=True)


def log_to_mlflow(ev: Evaluation, reports: Path) -> None:
    """A nested run under the training's run, with every figure and file; never needs the run
    (a collaborator's clone without the store gets one warning)."""
    cfg = ev.cfg
    if cfg.logger.get("name", "mlflow") != "mlflow":
        return
    out = reports / "eval"
    evaluation_runs.log_evaluation(
        runs.read_run_link(reports / "train_run.json"),
        mlflow_metrics(ev.metrics, ev.scores, ev.curve),
        [(out / "metrics.json", "eval"), (out / "report.json", "eval"), (out / "robustness.json", "eval")]
        + [(p, "eval/translations") for p in sorted((out / "translations").iterdir())]
        + [(p, "attention") for p in sorted((out / "attention").iterdir())],
        decode_name=evaluation_name(cfg),
        tags={
            "sacrebleu_signature": ev.report["bleu_signature"],
            "chrf_signature": ev.report["chrf_signature"],
            "decode_changes": ", ".join(f"{k}={v}" for k, v in decode_changes(cfg).items()) or "none",
            **provenance_tags({k: v for k, v in ev.report["provenance"].items() if k != "training"}),
        },
        # every decode setting, on the child run: evaluations of one model can be told apart
        params={f"decode.{k}": str(v) for k, v in OmegaConf.to_container(cfg.decode, resolve=True).items()},
        uri=store.tracking_uri(cfg.logger.get("tracking_uri")),
        timeout_s=cfg.logger.get("timeout_s", 10),
    )


def log_summary(ev: Evaluation) -> None:
    for name, per_dir in ev.scores.items():
        for d, s in per_dir.items():
            tok = f", tokenized BLEU {s['bleu_tok']:.2f}" if "bleu_tok" in s else ""
            log.info(
                "%s %s: BLEU %.2f chrF %.2f%s (%d references)", name, d, s["bleu"], s["chrf"], tok, s["references"]
            )
    log.info("signature %s", ev.report["bleu_signature"])


def _provenance(cfg: DictConfig) -> dict[str, Any]:
    """The evaluate stage's provenance: ``decode.device`` and ``decode.precision`` resolved to what decodes."""
    import torch

    from s2s.inference.device import autocast_dtype, resolve_device

    resolved = resolve_device(str(cfg.decode.get("device", "auto")))
    if resolved.type == "cuda" and resolved.index is None:
        resolved = torch.device("cuda", torch.cuda.current_device())
    dtype = autocast_dtype(resolved, str(cfg.decode.get("precision", "auto")))
    return stage_provenance(cfg, "evaluate", resolved, str(dtype).removeprefix("torch.") if dtype else None)
