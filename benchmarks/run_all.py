"""The benchmark suite: one command, a printed table, reports/benchmarks.json.

    python benchmarks/run_all.py            # full run (about 10 minutes on 2 cores)
    python benchmarks/run_all.py --quick    # smoke run (under 3 minutes)

Measures, each in its own process (so each peak resident memory is its own):
- the machine's matrix-multiply rate (a large torch.matmul, float32 and bf16);
- training throughput of the default model on the prepared Multi30k training data, fp32 and bf16
  autocast (median of measured windows after a warm-up, through the real Lightning Trainer);
- decoding throughput on the test set: batched greedy, batched beam 5, beam 5 one sentence at a time;
- preprocess throughput: SentencePiece training and encoding (sentences per second);
- model FLOPs per target token, counted from the architecture (see ``model_flops``), and the
  achieved training FLOP/s as a fraction of the measured float32 / bf16 matmul rate.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def matmul_rate(dtype_name: str, n: int = 2048, repeats: int = 10) -> float:
    import torch

    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype_name]
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.matmul(a, b)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.matmul(a, b)
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def model_flops(model_cfg: dict, vocab: int, src_per_tgt: float, mean_src_len: float) -> dict:
    """Multiply-adds of one target token, counted from the architecture; FLOPs = 2 x MACs.

    Encoder cost is per source token and charged to target tokens by the corpus ratio src/tgt.
    Per source token, each direction and layer of the encoder RNN: g*H*(input + H) (g = 4 LSTM,
    3 GRU); attention keys: enc_out * A.  Per target token: the decoder's first layer
    g*Hd*(E + Hd [input feeding] + Hd); upper layers g*Hd*2Hd; attention query Hd*A, scores
    S*A (+ S*A for the tanh-add), context S*enc_out, attentional layer Hd*(Hd + enc_out), output
    layer V*Hd.  Training is counted as 3x the forward pass (backward ~ 2x forward).
    Element-wise operations (gates, softmax) are not counted.
    """
    enc, dec, emb = model_cfg["encoder"], model_cfg["decoder"], model_cfg["emb_size"]
    g_enc = 4 if enc["rnn_type"] == "lstm" else 3
    g_dec = 4 if dec["rnn_type"] == "lstm" else 3
    he, hd, dirs = enc["hidden_size"], dec["hidden_size"], 2 if enc.get("bidirectional", True) else 1
    enc_out = he * dirs
    attn = bool((model_cfg.get("attention") or {}).get("_target_"))
    macs_src = 0
    inp = emb
    for _ in range(enc["num_layers"]):
        macs_src += dirs * g_enc * he * (inp + he)
        inp = enc_out
    if attn:
        macs_src += enc_out * hd
    feed = hd if dec.get("input_feeding", True) else 0
    macs_tgt = g_dec * hd * (emb + feed + (0 if attn else enc_out) + hd)
    macs_tgt += (dec["num_layers"] - 1) * g_dec * hd * 2 * hd
    if attn:
        macs_tgt += hd * hd + 2 * mean_src_len * hd + mean_src_len * enc_out
    macs_tgt += hd * (hd + enc_out) + vocab * hd
    forward = 2 * (macs_tgt + src_per_tgt * macs_src)
    return {"forward_flops_per_target_token": round(forward), "train_flops_per_target_token": round(3 * forward)}


def child(cmd: list[str]) -> dict:
    """Run a benchmark script that writes JSON (with its own peak RSS); returns the result."""
    out = ROOT / "reports" / ".bench_tmp.json"
    subprocess.run(
        [sys.executable, *cmd, "--out", str(out)],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    result = json.loads(out.read_text())
    out.unlink()
    return result


def preprocess_speed(limit: int | None) -> dict:
    import tempfile

    from s2s.data.download.sources import iter_lines
    from s2s.data.vocab import Vocabulary, train_sentencepiece

    raw = ROOT / "data/raw/multi30k"  # the download stage's layout: data/raw/<source>/<file>
    src, tgt = list(iter_lines(raw / "train.en.gz")), list(iter_lines(raw / "train.de.gz"))
    if limit:
        src, tgt = src[:limit], tgt[:limit]
    text = src + tgt
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        model = train_sentencepiece(text, Path(tmp) / "spm", vocab_size=8000 if not limit else 2000)
        train_s = time.perf_counter() - start
        vocab = Vocabulary(model)
        start = time.perf_counter()
        vocab.encode(text)
        encode_s = time.perf_counter() - start
    return {
        "sentences": len(text),
        "spm_train_sentences_per_sec": round(len(text) / train_s),
        "encode_sentences_per_sec": round(len(text) / encode_s),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "reports/benchmarks.json"))
    args = ap.parse_args()
    import numpy as np
    import torch
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from s2s.data.dataset import ParallelData

    torch.set_num_threads(2)
    report: dict = {"quick": args.quick, "torch": torch.__version__, "threads": 2}
    report["matmul_gflops"] = {d: round(matmul_rate(d) / 1e9, 1) for d in ("float32", "bfloat16")}
    report["preprocess"] = preprocess_speed(5000 if args.quick else None)

    steps, warmup = (40, 10) if args.quick else (200, 20)
    report["train"] = {}
    for precision in ("32-true", "bf16-mixed"):
        result = child(
            [
                "benchmarks/bench_train.py",
                "--steps",
                str(steps),
                "--warmup",
                str(warmup),
                f"trainer.precision={precision}",
            ]
        )
        report["train"][precision] = result

    model = ROOT / "models/model.pt"
    decode_cmd = ["benchmarks/bench_decode.py", "--single", "20" if args.quick else "100"]
    decode_cmd += ["--limit", "256"] if args.quick else []
    decode_cmd += [] if model.is_file() else ["--random-model"]
    report["decode"] = child(decode_cmd)

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config")
    train = ParallelData.load(ROOT / "data/prepared/train.npz")
    src_len, tgt_len = train.src_lengths() + 1, train.tgt_lengths() + 1
    flops = model_flops(
        OmegaConf.to_container(cfg.model, resolve=True),
        8000,
        float(src_len.sum() / tgt_len.sum()),
        float(np.mean(src_len)),
    )
    report["flops"] = flops
    for precision, peak in (("32-true", "float32"), ("bf16-mixed", "bfloat16")):
        achieved = report["train"][precision]["target_tokens_per_sec"] * flops["train_flops_per_target_token"]
        report["train"][precision]["achieved_gflops"] = round(achieved / 1e9, 1)
        report["train"][precision]["fraction_of_matmul_peak"] = round(achieved / 1e9 / report["matmul_gflops"][peak], 3)

    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    rows = [
        (
            "matmul GFLOP/s float32 / bf16",
            f"{report['matmul_gflops']['float32']} / {report['matmul_gflops']['bfloat16']}",
        )
    ]
    for precision, r in report["train"].items():
        rows.append(
            (f"train {precision}: target tok/s, pairs/s", f"{r['target_tokens_per_sec']}, {r['pairs_per_sec']}")
        )
        rows.append(
            (
                f"train {precision}: GFLOP/s, of matmul peak",
                f"{r['achieved_gflops']}, {r['fraction_of_matmul_peak']:.0%}",
            )
        )
        rows.append((f"train {precision}: peak RSS MiB", str(r["peak_rss_mib"])))
    for name, r in report["decode"]["results"].items():
        rows.append((f"decode {name}: sentences/s", str(r["sentences_per_sec"])))
    rows.append(("decode: peak RSS MiB", str(report["decode"]["peak_rss_mib"])))
    p = report["preprocess"]
    rows.append(
        (
            "preprocess: spm train / encode sentences/s",
            f"{p['spm_train_sentences_per_sec']} / {p['encode_sentences_per_sec']}",
        )
    )
    rows.append(("preprocess: peak RSS MiB", str(p["peak_rss_mib"])))
    rows.append(("model FLOPs per target token (training)", f"{flops['train_flops_per_target_token']:,}"))
    for what, value in rows:
        print(f"{what:<48}{value}")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
