"""Beam search outputs on small random models, compared with outputs recorded before its refactor.

``tests/data/beam_outputs.json`` holds, for every model config and a few option sets, each
hypothesis's tokens, exact log-probability and score (as float.hex) and a sha256 of its attention.
It was recorded with the beam search as it stood before being split into named steps
(``PYTHONPATH=src:tests python -m unit.inference.test_search_recorded`` rewrites it: only for a deliberate
change of the search).
"""

from __future__ import annotations

import hashlib
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
            att = None
            if h.attention is not None:
                att = hashlib.sha256(h.attention.float().contiguous().numpy().tobytes()).hexdigest()
            row.append({"tokens": h.tokens, "log_prob": h.log_prob.hex(), "score": h.score.hex(), "attention": att})
        out.append(row)
    return out


CASES = [(name, option) for name in MODEL_CONFIGS for option in OPTIONS]


@pytest.mark.parametrize(("name", "option"), CASES)
def test_beam_outputs_equal_the_recorded_ones(name: str, option: str) -> None:
    before = torch.get_num_threads()
    try:
        assert observe(name, option) == json.loads(PINS.read_text())[f"{name}/{option}"]
    finally:
        torch.set_num_threads(before)


if __name__ == "__main__":  # record (see the module docstring)
    PINS.write_text(json.dumps({f"{n}/{o}": observe(n, o) for n, o in CASES}, indent=1) + "\n")
    sys.exit(0)
