"""Run by path: compile a small model's decoder step the way ``train.compile`` does and print the
largest difference between its loss and the eager model's (a NaN prints ``nan``).

``tests/unit/inference/test_compilation.py`` runs it in fresh processes under different vector ISAs
(``ATEN_CPU_CAPABILITY``) that share one TorchInductor cache folder."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: conftest, helpers

import torch  # noqa: E402

from s2s.data.dataset import collate  # noqa: E402
from s2s.inference.compilation import compile_decoder_step  # noqa: E402
from s2s.training.task import TranslationTask  # noqa: E402

from conftest import small_model_config  # noqa: E402
from helpers.tiny_lightning import OPTIM, VOCAB, items  # noqa: E402


def main() -> None:
    tasks = []
    for _ in range(2):
        torch.manual_seed(0)
        tasks.append(TranslationTask(small_model_config("bilstm_attn"), OPTIM, VOCAB, label_smoothing=0.1))
    compile_decoder_step(tasks[1].model, True, "train.compile")
    batch = collate(items(0, 6, 5, seed=1))
    eager, compiled = (task.loss_sum(batch, 0.1).item() for task in tasks)
    print(abs(compiled - eager))


if __name__ == "__main__":
    main()
