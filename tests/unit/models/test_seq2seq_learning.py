"""A learning test: every model config learns the synthetic reverse task (as in Joey NMT).

If loss, masking, teacher forcing or greedy decoding were wired wrong, exact-match accuracy would
stay far below 95%.
"""

from __future__ import annotations

import pytest
import torch

from s2s.data.dataset import collate
from s2s.inference.search import greedy_search
from s2s.training.task import TranslationTask

from conftest import MODEL_CONFIGS, small_model_config
from helpers.tiny_models import VOCAB, reverse_task

OPTIM = {"name": "adam", "lr": 3e-3, "scheduler": "constant"}


@pytest.mark.parametrize("name", MODEL_CONFIGS)
def test_model_learns_reverse_task(name: str) -> None:
    torch.manual_seed(0)
    # the training task's own loss (masking, smoothing over real targets), as training uses it
    task = TranslationTask(small_model_config(name, emb=32, enc=64, dec=128), OPTIM, VOCAB, label_smoothing=0.1)
    model = task.model
    train = reverse_task(4000, seed=1)
    test = collate(reverse_task(200, seed=2))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(3)
    # the Transformer, at a constant rate without warmup, reached 93.5% after 500 steps (AMD EPYC)
    steps = 1000 if "noattn" in name or name == "transformer" else 500
    model.train()
    for _step in range(steps):
        idx = torch.randint(0, len(train), (64,), generator=g).tolist()
        batch = collate([train[i] for i in idx])
        loss = task.loss_sum(batch, task.hparams.label_smoothing) / batch.num_target_tokens
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    model.eval()
    hyps = greedy_search(model, test.src, test.src_lengths, 1.5, 5)
    refs = [t for _, _, t in reverse_task(200, seed=2)]
    exact = sum(h.tokens == r.tolist() for h, r in zip(hyps, refs, strict=True)) / len(refs)
    assert exact >= 0.95, f"{name}: exact match {exact:.2%} after {steps} steps"
