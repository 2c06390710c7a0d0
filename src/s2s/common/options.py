"""Every option of the composed config checked once, before a stage touches anything on disk.

A mistyped override (``trainer.max_epochs=abc``, ``optim.name=sgd``) used to fail deep inside a
stage, as a traceback naming a library's internals, sometimes after the stage had already removed
a resumable checkpoint.  Each stage script now calls :func:`validate` first; it checks the options
the stage reads against the table :data:`RULES` (one declarative rule per option) and the few
rules that relate two options (:data:`CROSS_RULES`, :mod:`s2s.common.option_relations`), and raises
one :class:`~s2s.common.io.InputError` that names every bad option with its value. The rules are
written in the words of :mod:`s2s.common.option_rules`.

Options missing from the composed config are skipped (a group such as ``optim`` only has the keys
of its schedule); keys not listed here are left to the code that reads them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from s2s.common.compile_modes import MODES as COMPILE_MODES
from s2s.common.compile_modes import compile_mode
from s2s.common.io import InputError
from s2s.common.option_relations import CROSS_RULES, MAX_LEN_RATIO
from s2s.common.option_rules import Bool, Choice, Float, Int, Rule, Text, is_int, is_number, show

__all__ = ["RULES", "CROSS_RULES", "STAGES", "Rule", "validate", "check_config"]

# the config sections each stage reads; a rule applies to a stage when its key is in one of them
STAGES: dict[str, tuple[str, ...]] = {
    "download": ("seed", "data"),
    "preprocess": ("seed", "data", "preprocess"),
    "train": ("seed", "data", "preprocess", "model", "optim", "train", "trainer", "logger", "numerics"),
    "evaluate": ("seed", "data", "preprocess", "decode", "evaluate", "logger", "numerics"),
    "translate": ("decode", "translate", "numerics"),
}


def _devices(v: Any) -> bool:
    if is_int(v):
        return v >= 1 or v == -1
    if isinstance(v, str):
        return v == "auto" or re.fullmatch(r"-1|\d+(,\d+)*,?", v) is not None
    return isinstance(v, Sequence) and len(v) > 0 and all(is_int(d) and d >= 0 for d in v)


def _val_check_interval(v: Any) -> bool:
    return (is_int(v) and v >= 1) or (isinstance(v, float) and 0.0 < v <= 1.0)


def _max_time(v: Any) -> bool:
    if isinstance(v, str):
        return re.fullmatch(r"\d+:\d{2}:\d{2}:\d{2}", v) is not None
    keys = {"days", "hours", "minutes", "seconds"}
    return isinstance(v, Mapping) and set(v) <= keys and all(is_number(x) and x >= 0 for x in v.values())


def _betas(v: Any) -> bool:
    return isinstance(v, Sequence) and len(v) == 2 and all(is_number(b) and 0.0 <= b < 1.0 for b in v)


def _compile(v: Any) -> bool:
    try:  # the one vocabulary is s2s.common.compile_modes'
        compile_mode(v)
    except InputError:
        return False
    return True


def _levels(v: Any) -> bool:
    return isinstance(v, Sequence) and all(is_number(x) and 0.0 <= x <= 1.0 for x in v)


LANG = r"[^\s<>]+"
PRECISIONS = (
    "64-true", "32-true", "16-true", "bf16-true", "16-mixed", "bf16-mixed",
    "transformer-engine", "transformer-engine-float16", "64", "32", "16", "bf16",
)  # fmt: skip
DROPOUT = Float(0.0, 1.0, high_open=True)
# Bounds of what one decoding request may cost: the beam (a beam of 100,000 allocates tens of GB)
# and the longest output (MAX_LEN_RATIO, :mod:`s2s.common.option_relations`).
MAX_BEAM = 64
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


_ABSENT = object()


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
            problems.append(f"{key}={show(value)}: {problem}")
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
