"""DVC stage `evaluate`: decode the test set, score with sacreBLEU, write reports/, log to MLflow."""

import json
import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

from s2s import tracking
from s2s.checkpoint import load_model_file
from s2s.cli import user_errors
from s2s.data.dataset import read_eval_records
from s2s.data.vocab import Vocabulary
from s2s.evaluation import (
    attention_heatmap,
    encode_sources,
    robustness_curve,
    score_by_direction,
    translate_ids,
    write_translations,
)
from s2s.io import write_json_atomic
from s2s.options import validate
from s2s.search import SearchOptions

log = logging.getLogger("evaluate")


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
@user_errors
def main(cfg: DictConfig) -> None:
    validate(cfg, "evaluate")
    prepared, reports, model_dir = (
        Path(cfg.paths.prepared_dir),
        Path(cfg.paths.reports_dir),
        Path(cfg.paths.model_dir),
    )
    vocab = Vocabulary(prepared / "spm.model")
    model, payload = load_model_file(model_dir / "model.pt", prepared / "spm.model")
    records = read_eval_records(prepared / f"{cfg.evaluate.split}.tsv")
    tagged = bool(cfg.preprocess.reverse)
    src_ids = encode_sources(vocab, records, tagged)
    opts = SearchOptions.from_config(cfg.decode)
    hyps = translate_ids(model, src_ids, opts, cfg.decode.batch_size)
    texts = vocab.decode([h[0].tokens for h in hyps])
    by_dir = score_by_direction(records, texts)
    primary = by_dir.get(f"{cfg.data.src_lang}-{cfg.data.tgt_lang}") or next(iter(by_dir.values()))
    metrics = {
        "bleu": primary["bleu"],
        "chrf": primary["chrf"],
        "bleu_signature": primary["bleu_signature"],
        "chrf_signature": primary["chrf_signature"],
        "split": cfg.data.splits[cfg.evaluate.split],
        "decode": f"{cfg.decode.name} (beam {opts.beam_size})",
        "directions": by_dir,
    }
    write_json_atomic(reports / "metrics.json", metrics)
    write_translations(reports / "translations.tsv", records, texts)

    primary_records = [r for r in records if r.direction == f"{cfg.data.src_lang}-{cfg.data.tgt_lang}"]
    curve = robustness_curve(
        model,
        vocab,
        primary_records,
        list(cfg.evaluate.robustness_levels),
        tagged,
        cfg.seed,
        cfg.decode.batch_size,
    )
    write_json_atomic(reports / "robustness.json", {"robustness": curve})

    heatmaps = []
    if cfg.evaluate.heatmaps and model.decoder.attention is not None:
        n = min(cfg.evaluate.heatmaps, len(records))
        att_opts = SearchOptions(
            beam_size=1,
            n_best=1,
            min_len=0,
            return_attention=True,
            max_len_a=opts.max_len_a,
            max_len_b=opts.max_len_b,
        )
        for i, hyp in enumerate(translate_ids(model, src_ids[:n], att_opts)):
            h = hyp[0]
            src_pieces = [vocab.id_to_piece(t) for t in src_ids[i]] + ["</s>"]
            out_pieces = [vocab.id_to_piece(t) for t in h.tokens] + ["</s>"]
            path = reports / "attention" / f"test{i}.png"
            attention_heatmap(path, src_pieces, out_pieces, h.attention[: len(out_pieces), : len(src_pieces)])
            heatmaps.append(path)

    run = json.loads((model_dir / "run.json").read_text()) if (model_dir / "run.json").is_file() else {}
    if run.get("run_id") and cfg.logger.get("name", "mlflow") == "mlflow":
        uri = run.get("tracking_uri") or tracking.tracking_uri(cfg.logger.get("tracking_uri"))
        tracking.check_tracking_uri(uri, cfg.logger.get("timeout_s", 10))
        flat = {"test_bleu": metrics["bleu"], "test_chrf": metrics["chrf"]}
        for d, s in by_dir.items():
            flat[f"test_bleu_{d.replace('-', '_')}"] = s["bleu"]
            flat[f"test_chrf_{d.replace('-', '_')}"] = s["chrf"]
        for row in curve:
            flat[f"robust_bleu_noise_{row['noise']}"] = row["bleu"]
        tracking.log_to_run(
            uri,
            run["run_id"],
            metrics=flat,
            tags={
                "sacrebleu_signature": metrics["bleu_signature"],
                "chrf_signature": metrics["chrf_signature"],
                "decode": metrics["decode"],
            },
            artifacts=[
                (reports / "metrics.json", "eval"),
                (reports / "translations.tsv", "eval"),
                (reports / "robustness.json", "eval"),
                *[(p, "attention") for p in heatmaps],
            ],
        )
    log.info(
        "%s BLEU %.2f chrF %.2f (%s)",
        metrics["split"],
        metrics["bleu"],
        metrics["chrf"],
        metrics["bleu_signature"],
    )


if __name__ == "__main__":
    main()
