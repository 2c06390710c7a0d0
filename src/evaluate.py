"""DVC stage `evaluate`: decode every test set, score with sacreBLEU, write reports/eval/, log to MLflow.

The outputs form one set, ``reports/eval/`` (metrics.json: every score; report.json: signatures,
method, counts, provenance; translations/<test set>.tsv, robustness.json, attention/), built in a
temporary folder and published in one rename: a killed or failed run leaves the previous set whole,
and no image of an earlier run outlives it. ``reports/metrics.json``, the file DVC reads as metrics
(the primary test set's BLEU, chrF, tokenized BLEU), is written in full beside the set before either
is published and renamed into place right after it: a failed run keeps both old files, a kill
between the two renames leaves the new set without a summary (never a stale one).
"""

import logging
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from s2s.common.cli import stage_main, user_errors
from s2s.common.io import InputError, atomic_path, check_writable_dir, write_json_atomic
from s2s.common.numerics import apply_from_config, provenance_tags, stage_provenance
from s2s.common.options import validate
from s2s.data.download.sources import CorpusConfig
from s2s.data.encoded import read_eval_records
from s2s.data.testsets import TestRecord, read_test_records
from s2s.data.vocab import Vocabulary
from s2s.evaluation.metrics import TOKENIZED_METHOD
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
from s2s.tracking import mlflow_store as tracking
from s2s.training.run_lock import check_params_file, record_params_file

log = logging.getLogger("evaluate")


def load_sets(prepared: Path, dataset: CorpusConfig, split: str) -> dict[str, list[TestRecord]]:
    """The sets to score, primary first: every test set of the data config, or the validation set."""
    if split == "valid":
        return {"val": as_test_records(read_eval_records(prepared / "valid.tsv"))}
    if split != "test":
        raise InputError(f"evaluate.split={split!r}: expected 'test' (every test set) or 'valid'")
    return {name: read_test_records(prepared / "testsets" / f"{name}.jsonl") for name in dataset.test_set_names()}


def check_options(cfg: DictConfig) -> None:
    for level in cfg.evaluate.robustness_levels:
        if not isinstance(level, int | float) or not 0.0 <= level <= 1.0:
            raise InputError(f"evaluate.robustness_levels: {level!r} is not a noise level in [0, 1]")
    if cfg.evaluate.heatmaps < 0:
        raise InputError(f"evaluate.heatmaps={cfg.evaluate.heatmaps}: must be >= 0")


def heatmaps(
    model: Any, vocab: Vocabulary, src_ids: list[list[int]], n: int, opts: SearchOptions, folder: Path
) -> None:
    """Attention heatmaps of the first ``n`` sources (greedy), as ``folder/test<i>.png``."""
    att_opts = SearchOptions(
        beam_size=1, n_best=1, min_len=0, return_attention=True, max_len_a=opts.max_len_a, max_len_b=opts.max_len_b
    )
    for i, hyp in enumerate(translate_ids(model, src_ids[:n], att_opts)):
        h = hyp[0]
        src_pieces = [vocab.id_to_piece(t) for t in src_ids[i]] + ["</s>"]
        out_pieces = [vocab.id_to_piece(t) for t in h.tokens] + ["</s>"]
        attention_heatmap(
            folder / f"test{i}.png", src_pieces, out_pieces, h.attention[: len(out_pieces), : len(src_pieces)]
        )


SCORES = ("bleu", "chrf", "bleu_tok")


def split_scores(
    scores: dict[str, dict[str, dict[str, Any]]], primary_name: str, forward: str, decode: str
) -> tuple[dict[str, float], dict[str, Any], dict[str, Any]]:
    """The evaluation's figures as three files: what DVC compares, every score once, and the rest.

    ``reports/metrics.json`` (DVC's metrics: ``dvc exp show`` columns) holds the primary test
    set's BLEU, chrF and tokenized BLEU only; ``reports/eval/metrics.json`` every test set's and
    direction's scores, numbers only; ``reports/eval/report.json`` what says how they were made
    (sacreBLEU signatures, the tokenized-BLEU method, the decoding, sentence and reference counts).
    """
    by_dir = scores[primary_name]
    primary = by_dir.get(forward) or next(iter(by_dir.values()))
    metrics = {k: primary[k] for k in SCORES if k in primary}
    numbers = {
        "test_sets": {n: {d: {k: s[k] for k in SCORES if k in s} for d, s in per.items()} for n, per in scores.items()}
    }
    report = {
        "split": primary_name,
        "direction": forward if forward in by_dir else next(iter(by_dir)),
        "decode": decode,
        **{k: primary[k] for k in ("bleu_signature", "chrf_signature", "bleu_tok_signature") if k in primary},
        **({"bleu_tok_method": TOKENIZED_METHOD} if "bleu_tok" in primary else {}),
        "robustness_search": "greedy",  # robustness.json: greedy decoding whatever decode.* says
        "test_sets": {
            n: {d: {k: v for k, v in s.items() if k not in SCORES} for d, s in per.items()} for n, per in scores.items()
        },
    }
    return metrics, numbers, report


def mlflow_metrics(metrics: dict[str, Any], scores: dict[str, Any], curve: list[dict[str, float]]) -> dict[str, float]:
    """Flat metric names for MLflow: the primary figures, then ``<test set>/<direction>/<metric>``.

    The training run gets them under the evaluation's name too (``test/beam5/bleu``,
    ``test/beam5/test_2017_mscoco/en-de/bleu``), so the runs table can show them beside the params.
    """
    flat = {k: metrics[k] for k in ("bleu", "chrf", "bleu_tok") if k in metrics}
    for set_name, per_dir in scores.items():
        for d, s in per_dir.items():
            for m in ("bleu", "chrf", "bleu_tok"):
                if m in s:
                    flat[f"{set_name}/{d}/{m}"] = s[m]
    # the robustness curve is decoded greedily, whatever the evaluation's own search
    flat.update({f"robust_greedy_bleu/noise_{row['noise']}": row["bleu"] for row in curve})
    return flat


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
@user_errors
def main(cfg: DictConfig) -> None:
    record_params_file()  # checked again before the reports are published
    validate(cfg, "evaluate")
    apply_from_config(cfg)  # before the first tensor operation: it decides which kernels run
    check_options(cfg)
    check_writable_dir(cfg.paths.reports_dir, "paths.reports_dir")
    prepared, reports, model_dir = Path(cfg.paths.prepared_dir), Path(cfg.paths.reports_dir), Path(cfg.paths.model_dir)
    dataset = CorpusConfig.from_config(cfg.data)
    vocab = Vocabulary(prepared / "spm.model")
    model = load_decoding_model(model_dir / "model.pt", prepared / "spm.model", cfg.decode)
    sets = load_sets(prepared, dataset, cfg.evaluate.split)
    tagged, cap = bool(cfg.preprocess.reverse), cfg.preprocess.filter.max_eval_pieces
    opts = SearchOptions.from_config(cfg.decode)
    forward = f"{dataset.src_lang}-{dataset.tgt_lang}"

    scores, hypotheses, primary_ids = {}, {}, []
    for name, records in sets.items():
        src_ids = encode_sources(vocab, records, tagged, cap)
        hyps = translate_ids(model, src_ids, opts, cfg.decode.batch_size)
        hypotheses[name] = vocab.decode([h[0].tokens for h in hyps])
        scores[name] = score_records(records, hypotheses[name])
        primary_ids = primary_ids or src_ids
    primary_name = next(iter(sets))
    metrics, numbers, report = split_scores(scores, primary_name, forward, f"{cfg.decode.name} (beam {opts.beam_size})")
    primary_records = [r for r in sets[primary_name] if r.direction == forward]
    report["provenance"] = stage_provenance(cfg, "evaluate")  # in report.json, not metrics.json: it names this CPU
    curve = robustness_curve(
        model,
        vocab,
        primary_records,
        list(cfg.evaluate.robustness_levels),
        tagged,
        cfg.seed,
        cfg.decode.batch_size,
        cap,
    )

    check_params_file()
    # publish: the set and the summary are both written in full first, so a failure leaves the old
    # ones as they were; then the old summary goes, the set is renamed, the summary renamed (a kill
    # between the renames leaves no summary, never an old one beside a newer set)
    with atomic_path(reports / "metrics.json") as summary:
        with atomic_path(reports / "eval", is_dir=True) as tmp:
            write_json_atomic(tmp / "metrics.json", numbers)
            write_json_atomic(tmp / "report.json", report)
            for name, records in sets.items():
                write_translations(tmp / "translations" / f"{name}.tsv", records, hypotheses[name])
            write_json_atomic(tmp / "robustness.json", {"robustness": curve})
            (tmp / "attention").mkdir()  # exists (empty) for a model without attention: DVC wants every output
            if cfg.evaluate.heatmaps and model.decoder.attention is not None:
                heatmaps(
                    model, vocab, primary_ids, min(cfg.evaluate.heatmaps, len(primary_ids)), opts, tmp / "attention"
                )
            write_json_atomic(summary, metrics)
            (reports / "metrics.json").unlink(missing_ok=True)

    out = reports / "eval"
    if cfg.logger.get("name", "mlflow") == "mlflow":  # never needs the run: a missing one is a warning
        tracking.log_evaluation(
            tracking.read_run_link(reports / "train_run.json"),
            mlflow_metrics(metrics, scores, curve),
            [(out / "metrics.json", "eval"), (out / "report.json", "eval"), (out / "robustness.json", "eval")]
            + [(p, "eval/translations") for p in sorted((out / "translations").iterdir())]
            + [(p, "attention") for p in sorted((out / "attention").iterdir())],
            decode_name=f"{cfg.evaluate.split}/{cfg.decode.name}{opts.beam_size}",
            tags={
                "sacrebleu_signature": report["bleu_signature"],
                "chrf_signature": report["chrf_signature"],
                **provenance_tags(report["provenance"]),
            },
            uri=tracking.tracking_uri(cfg.logger.get("tracking_uri")),
            timeout_s=cfg.logger.get("timeout_s", 10),
        )
    for name, per_dir in scores.items():
        for d, s in per_dir.items():
            tok = f", tokenized BLEU {s['bleu_tok']:.2f}" if "bleu_tok" in s else ""
            log.info(
                "%s %s: BLEU %.2f chrF %.2f%s (%d references)", name, d, s["bleu"], s["chrf"], tok, s["references"]
            )
    log.info("signature %s", report["bleu_signature"])


if __name__ == "__main__":
    stage_main(main)
