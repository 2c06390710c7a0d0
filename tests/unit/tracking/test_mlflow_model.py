"""The served translator (``s2s.tracking.mlflow_model``) in process: the input forms MLflow hands over,
request params checked with the CLI's rules, and a request's work stopped at its deadline (issue 34,
items 1 and 4). The same model through ``mlflow models serve``: tests/e2e/test_mlflow_model.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from s2s.data.vocab import Vocabulary, train_sentencepiece
from s2s.inference.search import SearchOptions
from s2s.inference.translator import Translator
from s2s.tracking import mlflow_model
from s2s.tracking.mlflow_model import Seq2SeqTranslator, input_lines

from helpers.tiny_models import make_model

LINES = ["a dog runs", "", "two cats sleep"]
DECODE = {"beam_size": 5, "length_penalty": 1.0, "max_len_a": 1.5, "max_len_b": 10, "min_len": 1, "n_best": 1}


@pytest.mark.parametrize(
    "given",
    [
        pd.DataFrame({"text": LINES}),
        pd.DataFrame([{"text": LINES}]),  # what MLflow makes of {"text": [...]}: one row holding the list
        pd.DataFrame({"text": [np.array(LINES, dtype=object)]}),
        pd.DataFrame({0: LINES}),  # a list, by position
        {"text": LINES},
        LINES,
    ],
    ids=["frame", "frame-of-one-list", "frame-of-one-array", "frame-by-position", "dict", "list"],
)
def test_every_input_form_is_one_line_per_sentence(given: object) -> None:
    assert input_lines(given) == LINES


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Seq2SeqTranslator:
    """The pyfunc model around a tiny random translator, as load_context leaves it."""
    folder = tmp_path_factory.mktemp("spm")
    corpus = ["a dog runs in the park", "two cats sleep on the sofa", "a man rides a bicycle"] * 20
    vocab = Vocabulary(train_sentencepiece(corpus, folder / "spm", vocab_size=30))
    model = make_model("bilstm_attn", vocab=len(vocab), eos_bias=-5.0)  # long outputs: many steps
    pyfunc = Seq2SeqTranslator()
    pyfunc.translator = Translator(model, vocab, SearchOptions(**DECODE), None, 64, 256)
    pyfunc.settings = {"decode": DECODE, "max_src_pieces": 256}
    return pyfunc


HOSTILE = [
    ({"max_len_b": 1_000_000_000}, "max_len_b"),
    ({"beam_size": 1000}, "beam_size"),
    ({"beam_size": 0}, "beam_size"),
    ({"beam_size": -3}, "beam_size"),
    ({"max_len_a": -1.0}, "max_len_a"),
    ({"max_len_b": -5}, "max_len_b"),
    ({"alpha": -1.0}, "alpha"),
    ({"alpha": float("nan")}, "alpha"),
    ({"beam_size": np.int64(1000)}, "beam_size"),
]


@pytest.mark.parametrize(("params", "named"), HOSTILE, ids=[str(p) for p, _ in HOSTILE])
def test_a_bad_request_param_is_refused_in_one_line_before_any_work(
    served: Seq2SeqTranslator, params: dict, named: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(served.translator, "translate", lambda *a, **k: pytest.fail("decoded a refused request"))
    with pytest.raises(MlflowException) as refused:
        served.predict(None, pd.DataFrame({"text": LINES}), params=params)
    err = refused.value
    assert err.get_http_status_code() == 400
    err.message = f"Failed to predict data '{LINES}'. \nError: {err.message}"  # what MLflow's server does
    assert "\n" not in err.message and err.message.startswith(named + "="), err.message
    assert "decode." not in err.message, "named as the request names it"


def test_good_request_params_are_used(served: Seq2SeqTranslator, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[SearchOptions] = []
    monkeypatch.setattr(served.translator, "translate", lambda lines: seen.append(served.translator.opts) or [])
    served.predict(None, pd.DataFrame({"text": []}), params={"beam_size": np.int64(2), "alpha": 0.6})
    assert (seen[0].beam_size, seen[0].length_penalty, seen[0].n_best) == (2, 0.6, 1)
    assert served.translator.opts.beam_size == 5, "a request's params outlive it"


def test_a_request_past_its_deadline_stops_computing(
    served: Seq2SeqTranslator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow answers 504 after MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT but its worker thread went on
    decoding (13.4 GB after 4 minutes): the search itself stops at the deadline. A fake clock that
    advances one second per decoder step stands for a slow request."""
    clock = iter(range(10**6))
    monkeypatch.setattr(mlflow_model.time, "monotonic", lambda: float(next(clock)))
    monkeypatch.setenv("MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT", "20")
    model = served.translator.model
    steps = []
    original = type(model).decode_step
    monkeypatch.setattr(type(model), "decode_step", lambda self, *a: steps.append(1) or original(self, *a))
    with pytest.raises(MlflowException) as stopped:
        served.predict(None, pd.DataFrame({"text": ["a dog runs in the park " * 20] * 3}))
    assert stopped.value.get_http_status_code() == 504
    assert len(steps) <= 20, f"{len(steps)} decoder steps after the deadline"
    assert "decode_step" not in vars(model), "the deadline's guard stays on the model"
    # the next request decodes normally
    monkeypatch.delenv("MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT")
    assert len(served.predict(None, pd.DataFrame({"text": LINES}), params={"beam_size": 1})) == 3


def test_load_context_applies_the_logged_numerics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    applied = []
    monkeypatch.setattr(mlflow_model, "apply_numerics", lambda *args: applied.append(args))
    monkeypatch.setattr(mlflow_model, "_load_translator", lambda config, artifacts: None)
    settings = tmp_path / "translator.json"
    settings.write_text('{"decode": {}, "numerics": {"mode": "portable", "threads": 3, "mkl_branch": "AVX2"}}')

    class Context:
        artifacts = {"settings": str(settings), "model": "m", "spm": "s"}

    Seq2SeqTranslator().load_context(Context())
    assert applied == [("portable", 3, "AVX2")]
