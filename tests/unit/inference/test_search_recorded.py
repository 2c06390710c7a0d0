"""Beam search outputs on small random models, compared with outputs recorded before its refactor.

``tests/data/beam_outputs.json`` holds, for every model config and a few option sets, each
hypothesis's tokens, log-probability, score and attention weights (6 decimals). Tokens, log-probabilities
and scores were recorded with the beam search as it stood before being split into named steps
(on an Intel Xeon, native kernels); the attention weights were added from an AMD EPYC run of the
same search, whose tokens all matched and whose log-probabilities and scores were within 4.6e-7
(relative) of the Intel ones. Tokens must be equal; the floats agree to 1e-5: CPUs with other
kernels (AVX-512 or AVX2, MKL's vendor paths) differ in the last bits, which is not a change of the
search (``PYTHONPATH=src:tests python -m unit.inference.test_search_recorded`` rewrites the file: only for a
deliberate change).
"""

from __future__ import annotations

import json
import sys

import pytest
import torch

from s2s.inference.search import SearchOptions, beam_search

from conftest import MODEL_CONFIGS, TEST_DATA
from helpers.tiny_models import make_batch, make_model

PINS = TEST_DATA / "beam_outputs.json"
LENGTHS = [6, 3, 9, 2, 5]
OPTIONS = {
    "k4_a1_nbest2": SearchOptions(beam_size=4, length_penalty=1.0, n_best=2),
    "k3_a0_min2_ngram2_att": SearchOptions(
        beam_size=3, length_penalty=0.0, min_len=2, no_repeat_ngram_size=2, return_attention=True
    ),
    "k5_a06_short_nbest3": SearchOptions(beam_size=5, length_penalty=0.6, max_len_a=0.5, max_len_b=2, n_best=3),
    "k6_eos_rare": SearchOptions(beam_size=6, length_penalty=1.0, max_len_a=2.0, max_len_b=4),
}


def observe(name: str, option: str) -> list[list[dict]]:
    torch.set_num_threads(1)
    model = make_model(name, seed=3, eos_bias=0.5 if option != "k6_eos_rare" else -1.0)
    src, lengths = make_batch(LENGTHS, seed=5)
    out = []
    for hyps in beam_search(model, src, lengths, OPTIONS[option]):
        row = []
        for h in hyps:
            att = None if h.attention is None else [[round(v, 6) for v in r] for r in h.attention.float().tolist()]
            row.append({"tokens": h.tokens, "log_prob": h.log_prob, "score": h.score, "attention": att})
        out.append(row)
    return out


CASES = [(name, option) for name in MODEL_CONFIGS for option in OPTIONS]


@pytest.mark.parametrize(("name", "option"), CASES)
def test_beam_outputs_equal_the_recorded_ones(name: str, option: str) -> None:
    before = torch.get_num_threads()
    try:
        seen, pinned = observe(name, option), json.loads(PINS.read_text())[f"{name}/{option}"]
        assert [[h["tokens"] for h in row] for row in seen] == [[h["tokens"] for h in row] for row in pinned]
        for row_seen, row_pinned in zip(seen, pinned, strict=True):
            for h, p in zip(row_seen, row_pinned, strict=True):
                assert h["log_prob"] == pytest.approx(p["log_prob"], rel=1e-5)
                assert h["score"] == pytest.approx(p["score"], rel=1e-5)
                assert (h["attention"] is None) == (p["attention"] is None)
                if p["attention"] is not None:
                    assert torch.allclose(torch.tensor(h["attention"]), torch.tensor(p["attention"]), rtol=0, atol=1e-5)
    finally:
        torch.set_num_threads(before)


if __name__ == "__main__":  # record (see the module docstring)
    pins = {f"{n}/{o}": observe(n, o) for n, o in CASES}
    PINS.write_text("{\n" + ",\n".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in pins.items()) + "\n}\n")
    sys.exit(0)
