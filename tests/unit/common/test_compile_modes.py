"""s2s.common.compile_modes: what ``train.compile`` / ``decode.compile`` settings mean, and a bad one named."""

from __future__ import annotations

import pytest

from s2s.common.compile_modes import compile_mode
from s2s.common.io import InputError
from s2s.common.options import check_config

from conftest import compose_config


@pytest.mark.parametrize(
    ("setting", "mode"),
    [(False, None), ("off", None), (None, None), (True, "default"), ("true", "default"),
     ("reduce-overhead", "reduce-overhead"), ("max-autotune", "max-autotune")],
)  # fmt: skip
def test_settings_name_a_torch_compile_mode(setting: object, mode: str | None) -> None:
    assert compile_mode(setting) == mode


def test_an_unknown_mode_is_an_error_naming_the_option() -> None:
    with pytest.raises(InputError, match=r"decode\.compile='fast'.*reduce-overhead"):
        compile_mode("fast", "decode.compile")
    with pytest.raises(InputError, match=r"train\.compile=1:"):
        compile_mode(1, "train.compile")
    cfg = compose_config(["train.compile=1", "decode.compile=yes"])
    problems = " ".join(check_config(cfg, ["train", "decode"]))
    assert "train.compile" in problems and "decode.compile" in problems
    good = compose_config(["train.compile=true", "decode.compile=reduce-overhead"])
    assert check_config(good, ["train", "decode"]) == []
