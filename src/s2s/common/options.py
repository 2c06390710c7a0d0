"""Every option of the composed config checked once, before a stage touches anything on disk.

A mistyped override (``trainer.max_epochs=abc``, ``optim.name=sgd``) used to fail deep inside a
stage, as a traceback naming a library's internals, sometimes after the stage had already removed
a resumable checkpoint.  Each stage script now calls :func:`validate` first; it checks the options
the stage reads against the table :data:`RULES` (one declarative rule per option) and the few
rules that relate two options (:data:`CROSS_RULES`), and raises one :class:`~s2s.common.io.InputError`
that names every bad option with its value.

Options missing from the composed config are skipped (a group such as ``optim`` only has the keys
of its schedule); keys not listed here are left to the code that reads them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from s2s.common.compile_modes import MODES as COMPILE_MODES
from s2s.common.compile_modes import compile_mode
from s2s.common.io import InputError

__all__ = ["RULES", "CROSS_RULES", "STAGES", "Rule", "validate", "check_config"]

# the config sections each stage reads; a rule applies to a stage when its key is in one of them
STAGES: dict[str, tuple[str, ...]] = {
    "download": ("seed", "data"),
    "preprocess": ("seed", "data", "preprocess"),
    "train": ("seed", "data", "preprocess", "model", "optim", "train", "trainer", "logger", "numerics"),
    "evaluate": ("seed", "data", "preprocess", "decode", "evaluate", "logger", "numerics"),
    "translate": ("decode", "translate", "numerics"),
}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


@dataclass(frozen=True)
class Rule:
    """What one option accepts: a test and the words that describe it in the error message."""

    test: Callable[[Any], bool]
    expected: str
    nullable: bool = False

    def problem(self, value: Any) -> str | None:
        if value is None:
            return None if self.nullable else f"expected {self.expected}"
        if self.test(value):
            return None
        return f"expected {self.expected}" + (" or null" if self.nullable else "")


def Int(
    low: int | None = None, high: int | None = None, *, also: Sequence[int] = (), nullable: bool = False
) -> Rule:
    """An integer in [``low``, ``high``] (or one of ``also``, e.g. -1 for "no limit")."""
    bounds = [f">= {low}"] if low is not None else []
    bounds += [f"<= {high}"] if high is not None else []
    words = "an integer" + (" " + " and ".join(bounds) if bounds else "") + "".join(f" or {a}" for a in also)

    def test(v: Any) -> bool:
        return _is_int(v) and (((low is None or v >= low) and (high is None or v <= high)) or v in also)

    return Rule(test, words, nullable)


def Float(
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    nullable: bool = False,
) -> Rule:
    """A finite number in the interval given (``low_open``: ``low`` itself excluded)."""
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high:g}")

    def test(v: Any) -> bool:
        if not _is_number(v):
            return False
        if low is not None and (v <= low if low_open else v < low):
            return False
        return high is None or (v < high if high_open else v <= high)

    return Rule(test, "a number" + (" " + " and ".join(parts) if parts else ""), nullable)


def Choice(*values: Any, nullable: bool = False) -> Rule:
    """One of ``values``; compared as text, so ``trainer.precision=32`` and ``'32'`` are the same."""
    allowed = {str(v) for v in values}
    words = "one of " + ", ".join(map(str, values))
    return Rule(lambda v: not isinstance(v, bool) and str(v) in allowed, words, nullable)


def Bool() -> Rule:
    return Rule(lambda v: isinstance(v, bool), "true or false")


def Text(pattern: str = r".+", what: str = "a non-empty string", *, nullable: bool = False) -> Rule:
    rx = re.compile(pattern)
    return Rule(lambda v: isinstance(v, str) and rx.fullmatch(v) is not None, what, nullable)


def _devices(v: Any) -> bool:
    if _is_int(v):
        return v >= 1 or v == -1
    if isinstance(v, str):
        return v == "auto" or re.fullmatch(r"-1|\d+(,\d+)*,?", v) is not None
    return isinstance(v, Sequence) and len(v) > 0 and all(_is_int(d) and d >= 0 for d in v)


def _val_check_interval(v: Any) -> bool:
    return (_is_int(v) and v >= 1) or (isinstance(v, float) and 0.0 < v <= 1.0)


def _max_time(v: Any) -> bool:
    if isinstance(v, str):
        return re.fullmatch(r"\d+:\d{2}:\d{2}:\d{2}", v) is not None
    keys = {"days", "hours", "minutes", "seconds"}
    return isinstance(v, Mapping) and set(v) <= keys and all(_is_number(x) and x >= 0 for x in v.values())


def _betas(v: Any) -> bool:
    return isinstance(v, Sequence) and len(v) == 2 and all(_is_number(b) and 0.0 <= b < 1.0 for b in v)


def _compile(v: Any) -> bool:
    try:  # the one vocabulary is s2s.common.compile_modes'
        compile_mode(v)
    except InputError:
        return False
    return True


def _levels(v: Any) -> bool:
    return isinstance(v, Sequence) and all(_is_number(x) and 0.0 <= x <= 1.0 for x in v)


LANG = r"[^\s<>]+"
PRECISIONS = (
    "64-true", "32-true", "16-true", "bf16-true", "16-mixed", "bf16-mixed",
    "transformer-engine", "transformer-engine-float16", "64", "32", "16", "bf16",
)  # fmt: skip
DROPOUT = Float(0.0, 1.0, high_open=True)
# Bounds of what one decoding request may cost (a beam of 100,000 allocates tens of GB; an output
# length of 10^8 runs for minutes per line): the beam, and the longest output relative to the
# stage's source cap (preprocess.filter.max_eval_pieces for validation and evaluate,
# translate.max_src_pieces for translate): max_len_a * cap + max_len_b <= MAX_LEN_RATIO * cap.
MAX_BEAM = 64
MAX_LEN_RATIO = 4
COMPILE = "false, true or a torch.compile mode (" + ", ".join(COMPILE_MODES) + ")"

RULES: dict[str, Rule] = {
    "seed": Int(0),
    # data (download, preprocess)
    "data.src_lang": Text(LANG, "a language code without spaces"),
    "data.tgt_lang": Text(LANG, "a language code without spaces"),
    "data.mirror": Text(nullable=True),
    "data.timeout_s": Float(0.0, low_open=True),
    "data.max_train_pairs": Int(1, nullable=True),
    "data.max_eval_pairs": Int(1, nullable=True),
    # preprocess
    "preprocess.spm.vocab_size": Int(5),  # 4 reserved ids (pad, unk, bos, eos) and at least one piece
    "preprocess.spm.model_type": Choice("unigram", "bpe", "char", "word"),
    "preprocess.spm.character_coverage": Float(0.0, 1.0, low_open=True),
    "preprocess.filter.max_words": Int(1),
    "preprocess.filter.max_pieces": Int(1),
    "preprocess.reverse": Bool(),
    "preprocess.noise.copies": Int(0),
    "preprocess.noise.replace_clean": Bool(),
    "preprocess.noise.level": Choice("word", "subword"),
    "preprocess.noise.p_drop": Float(0.0, 1.0),
    "preprocess.noise.p_blank": Float(0.0, 1.0),
    "preprocess.noise.shuffle_k": Int(0),
    # model
    "model.emb_size": Int(1),
    "model.share_embeddings": Bool(),
    "model.tie_output": Bool(),
    "model.init_scale": Float(0.0, 1.0, low_open=True),  # uniform(-s, s); 1 already saturates the gates
    "model.init": Choice("uniform", "xavier"),  # absent: uniform (the RNNs); xavier: the Transformer's
    "model.encoder.rnn_type": Choice("lstm", "gru"),
    "model.encoder.hidden_size": Int(1),
    "model.encoder.num_layers": Int(1),
    "model.encoder.dropout": DROPOUT,
    "model.encoder.emb_dropout": DROPOUT,
    "model.encoder.bidirectional": Bool(),
    "model.decoder.rnn_type": Choice("lstm", "gru"),
    "model.decoder.hidden_size": Int(1),
    "model.decoder.num_layers": Int(1),
    "model.decoder.dropout": DROPOUT,
    "model.decoder.emb_dropout": DROPOUT,
    "model.decoder.hidden_dropout": DROPOUT,
    "model.decoder.input_feeding": Bool(),
    "model.decoder.bridge": Bool(),
    # the Transformer's keys (model=transformer)
    "model.encoder.num_heads": Int(1),
    "model.encoder.ff_size": Int(1),
    "model.encoder.attention_dropout": DROPOUT,
    "model.encoder.hidden_dropout": DROPOUT,
    "model.decoder.num_heads": Int(1),
    "model.decoder.ff_size": Int(1),
    "model.decoder.attention_dropout": DROPOUT,
    # optim
    "optim.name": Choice("adam", "adamw"),
    "optim.lr": Float(0.0, low_open=True),
    "optim.betas": Rule(_betas, "two numbers in [0, 1), e.g. [0.9,0.999]"),
    "optim.weight_decay": Float(0.0),
    "optim.scheduler": Choice("constant", "plateau", "inverse_sqrt", "cosine"),
    "optim.warmup_steps": Int(0),
    "optim.factor": Float(0.0, 1.0, low_open=True, high_open=True),
    "optim.patience": Int(0),
    "optim.min_lr": Float(0.0),
    # train
    "train.batch.max_sentences": Int(1, nullable=True),
    "train.batch.max_tokens": Int(1, nullable=True),
    "train.batch.eval_max_sentences": Int(1),
    "train.num_workers": Int(0),
    "train.label_smoothing": Float(0.0, 1.0, high_open=True),
    "train.val_max_len_a": Float(0.0, MAX_LEN_RATIO),
    "train.val_max_len_b": Int(0),
    "train.early_stopping_patience": Int(0),
    "train.save_every_n_steps": Int(1),
    "train.average_last": Int(1),
    "train.resume": Text(what="auto, never or the path of a .ckpt file"),
    "train.init_from": Text(nullable=True),
    "train.validate_only": Bool(),
    "train.compile": Rule(_compile, COMPILE),
    # trainer (arguments of pytorch_lightning.Trainer)
    "trainer.accelerator": Choice("auto", "cpu", "gpu", "cuda", "mps"),  # no TPU support (torch_xla)
    "trainer.devices": Rule(_devices, "a number of devices >= 1, -1, auto, or a list of device ids"),
    "trainer.num_nodes": Int(1),
    "trainer.strategy": Text(),
    "trainer.precision": Choice(*PRECISIONS),
    "trainer.max_epochs": Int(1, also=(-1,), nullable=True),
    "trainer.max_steps": Int(1, also=(-1,)),
    "trainer.max_time": Rule(_max_time, "DD:HH:MM:SS", nullable=True),
    "trainer.gradient_clip_val": Float(0.0, nullable=True),
    "trainer.gradient_clip_algorithm": Choice("norm", "value"),
    "trainer.accumulate_grad_batches": Int(1),
    "trainer.val_check_interval": Rule(
        _val_check_interval, "a fraction of an epoch in (0, 1] or a number of steps >= 1"
    ),
    "trainer.log_every_n_steps": Int(1),
    "trainer.deterministic": Rule(lambda v: isinstance(v, bool) or v == "warn", "true, false or warn"),
    "trainer.enable_progress_bar": Rule(lambda v: isinstance(v, bool), "true or false", nullable=True),
    "trainer.num_sanity_val_steps": Int(0, also=(-1,)),
    # decoding (evaluate, translate)
    "decode.beam_size": Int(1, MAX_BEAM),
    "decode.n_best": Int(1),
    "decode.length_penalty": Float(0.0),
    "decode.max_len_a": Float(0.0, MAX_LEN_RATIO),
    "decode.max_len_b": Int(0),
    "decode.min_len": Int(0),
    "decode.no_repeat_ngram_size": Int(0),
    "decode.batch_size": Int(1),
    "decode.compile": Rule(_compile, COMPILE),
    # evaluate
    "evaluate.robustness_levels": Rule(_levels, "a list of noise levels in [0, 1]"),
    "evaluate.heatmaps": Int(0),
    # logger
    "logger.name": Choice("mlflow", "none"),
    "logger.log_model": Bool(),
    # MLflow's rules for registered model names and aliases (an alias is never "latest": reserved)
    "logger.registered_model_name": Text(r"[^/:]+", "a name without '/' or ':'", nullable=True),
    "logger.registered_model_alias": Text(
        r"(?i)(?!latest$|v\d+$)[\w-]+", "letters, digits, _ and - (not 'latest' or v<number>)", nullable=True
    ),
    "logger.log_system_metrics": Rule(lambda v: isinstance(v, bool), "true or false", nullable=True),
    "logger.timeout_s": Float(0.0, low_open=True),
    # numerics (s2s.common.numerics)
    "numerics.mode": Choice("portable", "fast", "gpu"),
    "numerics.threads": Int(1, nullable=True),
    "numerics.mkl_branch": Choice("AVX2", "COMPATIBLE", nullable=True),
    # translate
    "translate.model": Text(),
    "translate.spm": Text(),
    "translate.input": Text(what="a file, or - for standard input"),
    "translate.output": Text(what="a file, or - for standard output"),
    "translate.target_lang": Text(LANG, "a language code without spaces", nullable=True),
    "translate.batch_size": Int(1),
    "translate.max_src_pieces": Int(1, 4096),  # bounds the bytes read per line (x 64) and the search
}


def _cross_n_best(get: Callable[[str], Any]) -> tuple[str, str] | None:
    n_best, beam = get("decode.n_best"), get("decode.beam_size")
    if _is_int(n_best) and _is_int(beam) and n_best > beam:
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
        return "evaluate.split", f"={_show(split)}: expected test (every test set of the data config) or valid"
    return None


def _cross_portable(get: Callable[[str], Any]) -> tuple[str, str] | None:
    """Portable numerics are float32 with deterministic algorithms: anything else is the fast mode."""
    if get("numerics.mode") != "portable":
        return None
    hint = "portable numerics (the default) {}; numerics=fast is the machine-specific mode"
    if get("trainer.precision") not in (None, "32-true", "32", 32):
        return "trainer.precision", f"={_show(get('trainer.precision'))}: " + hint.format("train in 32-true")
    threads = get("numerics.threads")
    if _is_int(threads) and threads > 2:
        return "numerics.threads", f"={threads}: " + hint.format(
            "give the same bits at 1 to 2 threads only (more change the LSTM kernels' results): use null"
        )
    if get("numerics.threads") is None and get("numerics.mkl_branch") == "COMPATIBLE":
        return "numerics.threads", "=null with numerics.mkl_branch=COMPATIBLE: " + hint.format(
            "pin the thread count on MKL's COMPATIBLE branch (its GEMMs depend on it)"
        )
    if get("trainer.deterministic") is False:
        return "trainer.deterministic", "=false: " + hint.format("need deterministic algorithms")
    if str(get("decode.precision")) in ("bf16", "16"):
        return "decode.precision", f"={_show(get('decode.precision'))}: " + hint.format("decode in 32")
    return None


def _cross_stacked_dropout(get: Callable[[str], Any]) -> tuple[str, str] | None:
    """A stacked nn.LSTM/nn.GRU draws its inter-layer dropout masks inside ATen, the vendor's way
    (MKL's generator on Intel, ATen's own elsewhere): outside what portable numerics can pin."""
    if get("numerics.mode") != "portable":
        return None
    for part in ("encoder", "decoder"):
        layers, dropout = get(f"model.{part}.num_layers"), get(f"model.{part}.dropout")
        if not (_is_int(layers) and isinstance(dropout, int | float) and dropout > 0):
            continue
        if get(f"model.{part}.rnn_type") is None:
            continue  # a Transformer: its layers use the project's dropout only
        target = str(get(f"model.{part}._target_") or "")
        # the encoder is one stacked module; the fused decoder stacks its layers 2..L in one module
        stacked = layers if part == "encoder" else layers - 1 if target.endswith("FusedRNNDecoder") else 0
        if stacked > 1:
            return (
                f"model.{part}.num_layers",
                f"={layers} with model.{part}.dropout={_show(dropout)}: a stacked nn.LSTM/nn.GRU draws its "
                "inter-layer dropout masks the CPU vendor's way, which portable numerics cannot pin; set "
                f"model.{part}.dropout=0, fewer layers, or numerics=fast (reproducible on this CPU model only)",
            )
    return None


def _cross_heads(get: Callable[[str], Any]) -> tuple[str, str] | None:
    """A Transformer's width splits into equal heads."""
    for part in ("encoder", "decoder"):
        size, heads = get(f"model.{part}.hidden_size"), get(f"model.{part}.num_heads")
        if _is_int(size) and _is_int(heads) and size % heads:
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
    if _is_int(cap) and a * cap + b > MAX_LEN_RATIO * cap:
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

_ABSENT = object()


def _show(value: Any) -> str:
    """A value as the user would type it in an override."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def check_config(cfg: DictConfig, sections: Sequence[str]) -> list[str]:
    """Problems with the options of ``sections`` in ``cfg``: one "option=value: expected ..." each."""
    problems: list[str] = []
    resolved: dict[str, Any] = {}

    def get(key: str) -> Any:
        if key not in resolved:
            try:
                value = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=True)
            except OmegaConfBaseException as err:
                problems.append(f"{key}: {str(err).splitlines()[0]}")
                value = _ABSENT
            if isinstance(value, DictConfig | ListConfig):
                value = OmegaConf.to_container(value, resolve=True)
            resolved[key] = value
        return resolved[key]

    def wanted(key: str) -> bool:
        return key.split(".")[0] in sections

    for key, rule in RULES.items():
        if not wanted(key):
            continue
        value = get(key)
        if value is _ABSENT:
            continue
        problem = rule.problem(value)
        if problem:
            problems.append(f"{key}={_show(value)}: {problem}")
    if not problems:  # relations are only meaningful between individually valid values
        for rule_sections, rule in CROSS_RULES:
            if any(s in sections for s in rule_sections):
                found = rule(lambda k: None if get(k) is _ABSENT else get(k))
                if found:
                    problems.append(found[0] + found[1])
    return problems


def validate(cfg: DictConfig, stage: str) -> None:
    """Raise one :class:`InputError` naming every bad option ``stage`` reads; call it first in a stage."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}: expected one of {sorted(STAGES)}")
    problems = check_config(cfg, STAGES[stage])
    if problems:
        raise InputError("; ".join(problems))
