"""Rules over two options (:data:`CROSS_RULES`): values that are valid alone but not together
(``decode.n_best`` above ``decode.beam_size``, an output length limit that cannot reach
``decode.min_len`` or grows past the source cap, settings portable numerics cannot pin, a
Transformer width that does not split into equal heads).

:func:`s2s.common.options.check_config` applies them once every option is valid alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from s2s.common.option_rules import is_int, show

# The longest output a decoding request may ask for, relative to the stage's source cap
# (preprocess.filter.max_eval_pieces for validation and evaluate, translate.max_src_pieces for
# translate): max_len_a * cap + max_len_b <= MAX_LEN_RATIO * cap (an output length of 10^8 runs
# for minutes per line).
MAX_LEN_RATIO = 4


def _cross_n_best(get: Callable[[str], Any]) -> tuple[str, str] | None:
    n_best, beam = get("decode.n_best"), get("decode.beam_size")
    if is_int(n_best) and is_int(beam) and n_best > beam:
        return "decode.n_best", f"={n_best}: at most decode.beam_size={beam} hypotheses can be returned"
    return None


def _cross_replace_clean(get: Callable[[str], Any]) -> tuple[str, str] | None:
    if get("preprocess.noise.replace_clean") is True and get("preprocess.noise.copies") == 0:
        return (
            "preprocess.noise.replace_clean",
            "=true with preprocess.noise.copies=0 would leave no training pairs: set copies >= 1",
        )
    return None


def _cross_batch(get: Callable[[str], Any]) -> tuple[str, str] | None:
    if get("train.batch.max_sentences") is None and get("train.batch.max_tokens") is None:
        return "train.batch", ": set train.batch.max_sentences, train.batch.max_tokens or both"
    return None


def _cross_eval_split(get: Callable[[str], Any]) -> tuple[str, str] | None:
    split = get("evaluate.split")
    if split is not None and split not in ("test", "valid"):
        return "evaluate.split", f"={show(split)}: expected test (every test set of the data config) or valid"
    return None


def _cross_portable(get: Callable[[str], Any]) -> tuple[str, str] | None:
    """Portable numerics are float32 with deterministic algorithms: anything else is the fast mode."""
    if get("numerics.mode") != "portable":
        return None
    hint = "portable numerics (the default) {}; numerics=fast is the machine-specific mode"
    if get("trainer.precision") not in (None, "32-true", "32", 32):
        return "trainer.precision", f"={show(get('trainer.precision'))}: " + hint.format("train in 32-true")
    if get("numerics.threads") is None and get("numerics.mkl_branch") == "COMPATIBLE":
        return "numerics.threads", "=null with numerics.mkl_branch=COMPATIBLE: " + hint.format(
            "pin the thread count on MKL's COMPATIBLE branch (its GEMMs depend on it)"
        )
    if get("trainer.deterministic") is False:
        return "trainer.deterministic", "=false: " + hint.format("need deterministic algorithms")
    if str(get("decode.precision")) in ("bf16", "16"):
        return "decode.precision", f"={show(get('decode.precision'))}: " + hint.format("decode in 32")
    return None


def _cross_stacked_dropout(get: Callable[[str], Any]) -> tuple[str, str] | None:
    """A stacked nn.LSTM/nn.GRU draws its inter-layer dropout masks inside ATen, the vendor's way
    (MKL's generator on Intel, ATen's own elsewhere): outside what portable numerics can pin."""
    if get("numerics.mode") != "portable":
        return None
    for part in ("encoder", "decoder"):
        layers, dropout = get(f"model.{part}.num_layers"), get(f"model.{part}.dropout")
        if not (is_int(layers) and isinstance(dropout, int | float) and dropout > 0):
            continue
        if get(f"model.{part}.rnn_type") is None:
            continue  # a Transformer: its layers use the project's dropout only
        target = str(get(f"model.{part}._target_") or "")
        # the encoder is one stacked module; the fused decoder stacks its layers 2..L in one module
        stacked = layers if part == "encoder" else layers - 1 if target.endswith("FusedRNNDecoder") else 0
        if stacked > 1:
            return (
                f"model.{part}.num_layers",
                f"={layers} with model.{part}.dropout={show(dropout)}: a stacked nn.LSTM/nn.GRU draws its "
                "inter-layer dropout masks the CPU vendor's way, which portable numerics cannot pin; set "
                f"model.{part}.dropout=0, fewer layers, or numerics=fast (reproducible on this CPU model only)",
            )
    return None


def _cross_heads(get: Callable[[str], Any]) -> tuple[str, str] | None:
    """A Transformer's width splits into equal heads."""
    for part in ("encoder", "decoder"):
        size, heads = get(f"model.{part}.hidden_size"), get(f"model.{part}.num_heads")
        if is_int(size) and is_int(heads) and size % heads:
            return (
                f"model.{part}.num_heads",
                f"={heads}: model.{part}.hidden_size={size} must be a multiple of it (equal heads)",
            )
    return None


def _output_length(
    get: Callable[[str], Any], a_key: str, b_key: str, min_len: int, min_key: str | None
) -> tuple[str, str] | None:
    """The search's limit is int(a * source length + b) steps, the last one for EOS, and a source
    ends with EOS: a one-piece source may get int(2a + b) - 1 pieces.  That must reach
    ``min_len`` (and 1), and the longest source (the cap) must stay within MAX_LEN_RATIO x cap."""
    a, b = get(a_key), get(b_key)
    if a is None or b is None:
        return None
    shortest = max(int(2 * a + b) - 1, 0)
    if shortest < max(min_len, 1):
        why = "an empty translation" if shortest < 1 else f"below {min_key}={min_len}"
        return b_key, (
            f"={b}: with {a_key}={a:g} a one-piece source gets at most {shortest} output pieces ({why}); "
            f"the limit is {a_key} * (source pieces + 1) + {b_key} - 1: raise {b_key}"
        )
    cap_key = "translate.max_src_pieces" if get("translate.max_src_pieces") is not None else None
    cap_key = cap_key or "preprocess.filter.max_eval_pieces"
    cap = get(cap_key)
    if is_int(cap) and a * cap + b > MAX_LEN_RATIO * cap:
        return b_key, (
            f"={b}: {a_key} * {cap_key} + {b_key} = {a * cap + b:g} output pieces, at most {MAX_LEN_RATIO} x "
            f"{cap_key}={cap} = {MAX_LEN_RATIO * cap} are allowed (the search's cost grows with the length)"
        )
    return None


def _cross_decode_length(get: Callable[[str], Any]) -> tuple[str, str] | None:
    min_len = get("decode.min_len")
    return _output_length(get, "decode.max_len_a", "decode.max_len_b", min_len or 0, "decode.min_len")


def _cross_val_length(get: Callable[[str], Any]) -> tuple[str, str] | None:
    return _output_length(get, "train.val_max_len_a", "train.val_max_len_b", 0, None)


# rules over two options: (sections they belong to, check returning (option, message) or None)
CROSS_RULES: list[tuple[tuple[str, ...], Callable[[Callable[[str], Any]], tuple[str, str] | None]]] = [
    (("decode",), _cross_n_best),
    (("decode",), _cross_decode_length),
    (("train",), _cross_val_length),
    (("preprocess",), _cross_replace_clean),
    (("train",), _cross_batch),
    (("evaluate",), _cross_eval_split),
    (("numerics",), _cross_portable),
    (("model",), _cross_stacked_dropout),
    (("model",), _cross_heads),
]
