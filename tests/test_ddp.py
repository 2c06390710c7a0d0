"""DDP on CPU with gloo: the code path of multi-GPU training, checked without GPUs."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from s2s.build import build_model
from s2s.data.dataset import collate
from s2s.data.vocab import PAD_ID
from s2s.task import distributed_token_mean

from conftest import copy_tiny, run_script, small_model_config

VOCAB = 20


def _batches() -> tuple[list, list]:
    """Two halves with different lengths, so the ranks hold different numbers of target tokens."""
    g = torch.Generator().manual_seed(0)

    def item(i: int, n: int) -> tuple:
        return (i, torch.randint(4, VOCAB, (n,), generator=g), torch.randint(4, VOCAB, (n + 1,), generator=g))

    return [item(i, 3 + i % 3) for i in range(4)], [item(4 + i, 6 + i % 4) for i in range(4)]


def _step(model: torch.nn.Module, items: list) -> None:
    batch = collate(items)
    logits = model(batch.src, batch.src_lengths, batch.tgt_in)
    loss_sum = torch.nn.functional.cross_entropy(
        logits.reshape(-1, VOCAB), batch.tgt_out.reshape(-1), ignore_index=PAD_ID, reduction="sum"
    )
    loss, _ = distributed_token_mean(loss_sum, torch.tensor(float(batch.num_target_tokens)))
    loss.backward()


def _fresh_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(small_model_config("bilstm_attn"), VOCAB)


def _worker(rank: int, init_file: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    model = torch.nn.parallel.DistributedDataParallel(_fresh_model())
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    _step(model, _batches()[rank])
    opt.step()
    if rank == 0:
        torch.save(model.module.state_dict(), out)
    dist.barrier()
    dist.destroy_process_group()


def test_two_processes_give_the_union_batch_gradient(tmp_path: Path) -> None:
    out = tmp_path / "ddp.pt"
    mp.start_processes(_worker, args=(str(tmp_path / "init"), str(out)), nprocs=2, start_method="spawn")
    model = _fresh_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    first, second = _batches()
    _step(model, first + second)
    opt.step()
    ddp_state = torch.load(out, weights_only=True)
    before = _fresh_model().state_dict()
    moved = 0
    for name, value in model.state_dict().items():
        torch.testing.assert_close(ddp_state[name], value, atol=1e-6, rtol=1e-5, msg=name)
        moved += int(not torch.equal(value, before[name]))
    assert moved > 0, "the step must change the weights"


@pytest.mark.slow
def test_ddp_training_run_and_exact_validation(tiny_data: Path, tmp_path: Path) -> None:
    paths = copy_tiny(tiny_data, tmp_path)
    db = f"sqlite:///{tmp_path}/mlflow.db"
    run_script("train", *paths, "trainer=ddp_cpu", f"logger.tracking_uri={db}", "logger.experiment_name=ddp")
    # one model, one run file, one MLflow run, one Hydra output folder
    assert (tmp_path / "models/model.pt").is_file()
    assert len(list((tmp_path / "checkpoints").glob("best*.ckpt"))) == 1
    with sqlite3.connect(f"{tmp_path}/mlflow.db") as con:
        assert con.execute("select count(*) from runs").fetchone()[0] == 1
    assert len([p for p in (tmp_path / "hydra").iterdir() if p.name == ".hydra"]) == 1
    run_script("evaluate", *paths, "decode=greedy", f"logger.tracking_uri={db}")
    assert json.loads((tmp_path / "reports/metrics.json").read_text())["bleu"] >= 0

    # the validation set decoded on 2 ranks gives exactly the single-process hypotheses and loss
    model = str(tmp_path / "models/model.pt")
    results = {}
    for name, trainer in (("single", "default"), ("ddp", "ddp_cpu")):
        reports = tmp_path / f"val_{name}"
        run_script(
            "train",
            *paths,
            f"trainer={trainer}",
            "train.validate_only=true",
            f"train.init_from={model}",
            f"paths.reports_dir={reports}",
            f"hydra.run.dir={tmp_path}/hydra_{name}",
            "logger=none",
        )
        results[name] = json.loads((reports / "validation.json").read_text())
    assert len(results["single"]["hypotheses"]) == 100
    assert results["ddp"]["hypotheses"] == results["single"]["hypotheses"]
    assert results["ddp"]["val_bleu"] == results["single"]["val_bleu"]
    assert results["ddp"]["val_loss"] == pytest.approx(results["single"]["val_loss"], rel=1e-5)
