"""Resume policy (s2s.training.resume): what a resume must match, what it may ignore, and who may touch the folder."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from s2s.common.io import InputError
from s2s.training import resume

from conftest import compose_config

BASE = ["preset=tiny"]


def fp(*overrides: str) -> str:
    return resume.fingerprint(compose_config([*BASE, *overrides]))


@pytest.mark.parametrize(
    "override",
    [
        "data.mirror=/somewhere/else",
        "data.sources.multi30k.mirror=/somewhere/else",
        "data.sources.multi30k.mirror_name=elsewhere",
        "data.timeout_s=5",
        "logger=none",
        "trainer.log_every_n_steps=1",
        "trainer.enable_progress_bar=true",
        "paths.checkpoint_dir=/tmp/elsewhere",
        "train.num_workers=2",
        "train.save_every_n_steps=7",
        "decode=greedy",
    ],
)
def test_fingerprint_ignores_what_does_not_change_the_result(override: str) -> None:
    assert fp(override) == fp()


@pytest.mark.parametrize(
    "override",
    [
        "seed=7",
        "model.emb_size=48",
        "optim=adamw_cosine",
        "train.label_smoothing=0.2",
        "train.batch.max_tokens=300",
        "trainer.precision=bf16-mixed",
        "trainer.gradient_clip_val=0.5",
        "trainer.gradient_clip_algorithm=value",
        "trainer.accumulate_grad_batches=2",
        "trainer.max_epochs=3",
        "trainer.max_steps=11",
        "data.max_train_pairs=500",
    ],
)
def test_fingerprint_covers_what_changes_the_result(override: str) -> None:
    assert fp(override) != fp()


def _stamped_folder(tmp_path: Path, cfg_overrides: list[str], world_size: int = 1) -> Path:
    cfg = compose_config([*BASE, *cfg_overrides])
    ckpt = tmp_path / "checkpoints"
    ckpt.mkdir()
    state = {
        "state_dict": {"model.w": torch.ones(2)},
        "global_step": 5,
        resume.CKPT_KEY: {"fingerprint": resume.fingerprint(cfg)},
    }
    torch.save(state, ckpt / "last.ckpt")
    decision = resume.Decision(None, False, "test")
    resume.prepare_checkpoint_dir(
        ckpt, decision, resume.fingerprint(cfg), resume.relevant_config(cfg), world_size, is_global_zero=True
    )
    return ckpt


def _decide(ckpt: Path, overrides: list[str], world_size: int = 1, mode: str = "auto") -> resume.Decision:
    cfg = compose_config([*BASE, *overrides])
    return resume.decide(ckpt, resume.fingerprint(cfg), resume.relevant_config(cfg), world_size, mode)


def test_same_config_resumes_from_last(tmp_path: Path) -> None:
    ckpt = _stamped_folder(tmp_path, [])
    assert _decide(ckpt, ["data.mirror=/x"]).resume_path == str(ckpt / "last.ckpt")


def test_other_world_size_is_refused_with_one_line(tmp_path: Path) -> None:
    ckpt = _stamped_folder(tmp_path, [], world_size=2)
    with pytest.raises(InputError) as err:
        _decide(ckpt, [], world_size=1)
    message = str(err.value)
    assert "\n" not in message and "2 processes" in message and "train.resume=never" in message
    assert (ckpt / "last.ckpt").is_file()


def test_changed_config_moves_the_resumable_checkpoint_aside(tmp_path: Path, caplog) -> None:
    ckpt = _stamped_folder(tmp_path, [])
    old = (ckpt / "last.ckpt").read_bytes()
    cfg = compose_config([*BASE, "trainer.max_epochs=4"])
    decision = _decide(ckpt, ["trainer.max_epochs=4"])
    assert decision.resume_path is None and decision.start_fresh
    before = compose_config(BASE).trainer.max_epochs
    assert f"trainer.max_epochs {before} -> 4" in decision.reason
    with caplog.at_level(logging.WARNING):
        resume.prepare_checkpoint_dir(
            ckpt, decision, resume.fingerprint(cfg), resume.relevant_config(cfg), 1, is_global_zero=True
        )
    stale = [p for p in ckpt.iterdir() if p.name.startswith(f"stale-{fp()}-")]
    assert len(stale) == 1 and (stale[0] / "last.ckpt").read_bytes() == old
    assert not (ckpt / "last.ckpt").exists()
    assert str(stale[0]) in caplog.text


SLURM_RANK_1 = {
    "SLURM_NTASKS": "2",
    "SLURM_NTASKS_PER_NODE": "2",
    "SLURM_PROCID": "1",
    "SLURM_LOCALID": "1",
    "SLURM_NODEID": "0",
    "SLURM_JOB_NAME": "train",
    "SLURM_JOB_ID": "42",
    "SLURM_NODELIST": "localhost",
}


def test_a_slurm_task_of_nonzero_rank_never_touches_the_folder(tmp_path: Path, monkeypatch) -> None:
    # srun sets SLURM_PROCID / SLURM_LOCALID, not LOCAL_RANK / NODE_RANK: the rank must come from
    # Lightning's cluster environment (the old check took every SLURM task for the launcher)
    for key in ("LOCAL_RANK", "NODE_RANK", "RANK", "WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in SLURM_RANK_1.items():
        monkeypatch.setenv(key, value)
    trainer = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False, enable_checkpointing=False)
    assert not trainer.is_global_zero and trainer.global_rank == 1
    ckpt = _stamped_folder(tmp_path, [])
    cfg = compose_config([*BASE, "seed=99"])  # another config: rank 0 would move last.ckpt aside
    decision = _decide(ckpt, ["seed=99"], world_size=trainer.num_nodes * trainer.num_devices)
    resume.prepare_checkpoint_dir(
        ckpt, decision, resume.fingerprint(cfg), resume.relevant_config(cfg), 2, trainer.is_global_zero
    )
    assert (ckpt / "last.ckpt").is_file()
    assert not any(p.name.startswith("stale-") for p in ckpt.iterdir())


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_a_corrupt_last_checkpoint_falls_back_to_an_older_one(tmp_path: Path, damage: str, caplog) -> None:
    ckpt = _stamped_folder(tmp_path, [])
    good = (ckpt / "last.ckpt").read_bytes()
    (ckpt / "best.ckpt").write_bytes(good)
    (ckpt / "last.ckpt").write_bytes(b"" if damage == "empty" else good[: len(good) // 2])
    with caplog.at_level(logging.WARNING):
        decision = _decide(ckpt, [])
    assert decision.resume_path == str(ckpt / "best.ckpt")
    assert "cannot resume from" in caplog.text and "last.ckpt" in caplog.text


def test_no_readable_checkpoint_starts_fresh_keeping_the_files_aside(tmp_path: Path) -> None:
    ckpt = _stamped_folder(tmp_path, [])
    (ckpt / "last.ckpt").write_bytes(b"")
    decision = _decide(ckpt, [])
    assert decision.resume_path is None and decision.start_fresh


def test_a_checkpoint_of_another_configuration_is_not_resumed(tmp_path: Path) -> None:
    ckpt = _stamped_folder(tmp_path, [])
    torch.save({"state_dict": {}, resume.CKPT_KEY: {"fingerprint": "someone-else"}}, ckpt / "last.ckpt")
    decision = _decide(ckpt, [])
    assert decision.resume_path is None


def test_a_corrupt_last_checkpoint_is_moved_aside_not_overwritten(tmp_path: Path) -> None:
    ckpt = _stamped_folder(tmp_path, [])
    good = (ckpt / "last.ckpt").read_bytes()
    (ckpt / "best.ckpt").write_bytes(good)
    (ckpt / "last.ckpt").write_bytes(b"half a checkpoint")
    for n in (1, 2):  # a second corrupt file does not overwrite the first one set aside
        decision = _decide(ckpt, [])
        assert decision.resume_path == str(ckpt / "best.ckpt")
        cfg = compose_config(BASE)
        resume.prepare_checkpoint_dir(
            ckpt, decision, resume.fingerprint(cfg), resume.relevant_config(cfg), 1, is_global_zero=True
        )
        assert not (ckpt / "last.ckpt").exists()
        assert (ckpt / f"last.ckpt.corrupt-{n}").read_bytes() == b"half a checkpoint"
        (ckpt / "last.ckpt").write_bytes(b"half a checkpoint")


def _finished_folder(tmp_path: Path, overrides: list[str]) -> tuple[Path, dict[str, bytes]]:
    ckpt = _stamped_folder(tmp_path, overrides)
    (ckpt / "best.ckpt").write_bytes((ckpt / "last.ckpt").read_bytes())
    (ckpt / "config.yaml").write_text("seed: 1\n")
    (ckpt / resume.COMPLETE_MARKER).write_text("done\n")
    return ckpt, {p.name: p.read_bytes() for p in ckpt.iterdir() if p.is_file()}


def test_a_finished_run_of_the_same_configuration_is_reused(tmp_path: Path) -> None:
    ckpt, _ = _finished_folder(tmp_path, [])
    decision = _decide(ckpt, ["data.sources.multi30k.mirror=/elsewhere"])
    assert decision.resume_path == str(ckpt / "last.ckpt") and not decision.start_fresh
    assert "without training" in decision.reason
    assert _decide(ckpt, [], mode="never").start_fresh


def _start_fresh_over(ckpt: Path, overrides: list[str]) -> None:
    cfg = compose_config([*BASE, *overrides])
    decision = _decide(ckpt, overrides)
    assert decision.start_fresh
    resume.prepare_checkpoint_dir(
        ckpt, decision, resume.fingerprint(cfg), resume.relevant_config(cfg), 1, is_global_zero=True
    )


def test_a_finished_run_is_kept_until_the_new_run_saves_and_restored_if_it_fails(tmp_path: Path) -> None:
    ckpt, before = _finished_folder(tmp_path, [])
    _start_fresh_over(ckpt, ["seed=7"])
    assert not (ckpt / "best.ckpt").exists()
    assert resume.restore_previous(ckpt)  # the new run failed before its first checkpoint
    assert {p.name: p.read_bytes() for p in ckpt.iterdir() if p.is_file()} == before

    _start_fresh_over(ckpt, ["seed=7"])
    (ckpt / "last.ckpt").write_bytes(b"the new run's first checkpoint")
    resume.discard_previous(ckpt)  # what the checkpoint writer calls after it
    assert not resume.restore_previous(ckpt)
    assert sorted(p.name for p in ckpt.iterdir() if p.is_file()) == ["fingerprint.json", "last.ckpt"]


@pytest.mark.parametrize("saved", [False, True], ids=["killed-before-saving", "killed-after-saving"])
def test_a_run_killed_while_a_finished_run_was_set_aside(tmp_path: Path, saved: bool) -> None:
    ckpt, before = _finished_folder(tmp_path, [])
    _start_fresh_over(ckpt, ["seed=7"])
    if saved:
        (ckpt / "last.ckpt").write_bytes(b"new")
    resume.recover_previous(ckpt)
    assert not (ckpt / resume.PREVIOUS).exists()
    if saved:
        assert (ckpt / "last.ckpt").read_bytes() == b"new" and not (ckpt / "best.ckpt").exists()
    else:
        assert {p.name: p.read_bytes() for p in ckpt.iterdir() if p.is_file()} == before


# --- issue 35, item 1: changed data is never trained over ---------------------------------------


def _prepared(tmp_path: Path, spm: bytes = b"pieces v1", train: bytes = b"train ids v1") -> Path:
    """A prepared-data folder with the files training reads (contents only hashed here)."""
    prepared = tmp_path / "prepared"
    prepared.mkdir(exist_ok=True)
    for name, data in (("spm.model", spm), ("train.npz", train), ("valid.npz", b"v"), ("valid.tsv", b"t")):
        (prepared / name).write_bytes(data)
    return prepared


@pytest.mark.parametrize("changed", ["spm.model", "train.npz", "valid.npz", "valid.tsv"])
def test_fingerprint_covers_the_prepared_data(tmp_path: Path, changed: str) -> None:
    prepared = _prepared(tmp_path)
    before = fp(f"paths.prepared_dir={prepared}")
    (prepared / changed).write_bytes(b"other bytes")
    assert fp(f"paths.prepared_dir={prepared}") != before


def test_the_prepared_folders_place_is_not_in_the_fingerprint(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = _prepared(tmp_path / "a"), _prepared(tmp_path / "b")
    assert fp(f"paths.prepared_dir={a}") == fp(f"paths.prepared_dir={b}")


def _finished_over(tmp_path: Path, prepared: Path) -> Path:
    over = [f"paths.prepared_dir={prepared}"]
    ckpt, _ = _finished_folder(tmp_path, over)
    return ckpt


def test_a_finished_run_over_other_data_is_not_exported_again(tmp_path: Path) -> None:
    prepared = _prepared(tmp_path)
    ckpt = _finished_over(tmp_path, prepared)
    assert not _decide(ckpt, [f"paths.prepared_dir={prepared}"]).start_fresh  # same data: reused
    (prepared / "spm.model").write_bytes(b"pieces v2")  # the user's corpus changed, preprocess reran
    decision = _decide(ckpt, [f"paths.prepared_dir={prepared}"])
    assert decision.start_fresh and decision.resume_path is None
    assert "prepared.spm.model" in decision.reason and len(decision.reason) < 200  # digests shortened


def test_an_unfinished_run_over_other_data_is_not_resumed(tmp_path: Path) -> None:
    prepared = _prepared(tmp_path)
    ckpt = _stamped_folder(tmp_path, [f"paths.prepared_dir={prepared}"])
    (prepared / "train.npz").write_bytes(b"train ids v2")
    decision = _decide(ckpt, [f"paths.prepared_dir={prepared}"])
    assert decision.start_fresh and decision.resume_path is None


def test_a_checkpoint_trained_with_another_vocabulary_is_not_resumable(tmp_path: Path) -> None:
    path = tmp_path / "x.ckpt"
    torch.save({"state_dict": {}, resume.CKPT_KEY: {"fingerprint": "fp", "spm_sha256": "a" * 64}}, path)
    assert resume.checkpoint_problem(path, "fp", spm_sha256="a" * 64) is None
    problem = resume.checkpoint_problem(path, "fp", spm_sha256="b" * 64)
    assert problem is not None and "vocabulary" in problem


def test_an_explicit_checkpoint_of_another_vocabulary_is_refused(tmp_path: Path) -> None:
    prepared = _prepared(tmp_path)
    path = tmp_path / "elsewhere.ckpt"
    torch.save({"state_dict": {}, resume.CKPT_KEY: {"fingerprint": "x", "spm_sha256": "a" * 64}}, path)
    with pytest.raises(InputError, match="another SentencePiece vocabulary"):
        _decide(tmp_path / "none", [f"paths.prepared_dir={prepared}"], mode=str(path))


# --- issue 35, item 2: every Trainer argument that changes results is in the fingerprint ---------


@pytest.mark.parametrize(
    "override",
    [
        "+trainer.overfit_batches=2",
        "+trainer.min_epochs=3",
        "+trainer.min_steps=30",
        "+trainer.use_distributed_sampler=true",
        "+trainer.reload_dataloaders_every_n_epochs=1",
        "+trainer.callbacks=[{_target_:pytorch_lightning.callbacks.StochasticWeightAveraging,swa_lrs:0.01}]",
        "+trainer.limit_train_batches=0.5",
        "trainer.strategy=ddp",
        "trainer.accelerator=gpu",
    ],
)
def test_fingerprint_covers_every_trainer_argument_that_can_change_weights(override: str) -> None:
    assert fp(override) != fp()


@pytest.mark.parametrize(
    "override",
    [
        "+trainer.enable_model_summary=false",
        "+trainer.default_root_dir=/tmp/elsewhere",
        "+trainer.logger=true",
        "trainer.devices=2",  # the world size: checked on its own (a refusal, not a fresh start)
    ],
)
def test_fingerprint_ignores_the_listed_trainer_arguments(override: str) -> None:
    assert fp(override) == fp()


def test_every_ignored_trainer_key_is_documented() -> None:
    notes = (Path(__file__).resolve().parents[3] / "docs" / "notes" / "issue35.md").read_text()
    for key in resume.TRAINER_KEYS_IGNORED:
        assert f"`{key}`" in notes, key
        assert key in (resume.__doc__ or "") + (resume.relevant_config.__doc__ or ""), key


# --- issue 35, item 4: a finished run's checkpoints are never deleted by another configuration ---


@pytest.mark.parametrize("how", ["saved", "killed-after-saving"])
def test_a_finished_run_of_another_configuration_is_kept_aside_not_deleted(tmp_path: Path, how: str, caplog) -> None:
    ckpt, before = _finished_folder(tmp_path, [])
    _start_fresh_over(ckpt, ["seed=7"])
    (ckpt / "last.ckpt").write_bytes(b"the new run's first checkpoint")
    with caplog.at_level(logging.WARNING):
        if how == "saved":
            resume.discard_previous(ckpt)  # what the checkpoint writer calls after it
        else:
            resume.recover_previous(ckpt)  # the next run, after a kill
    kept = [p for p in ckpt.iterdir() if p.name.startswith(f"stale-{fp()}-")]
    assert len(kept) == 1, sorted(p.name for p in ckpt.iterdir())
    assert {p.name: p.read_bytes() for p in kept[0].iterdir() if p.is_file()} == before
    assert str(kept[0]) in caplog.text and "rm -r" in caplog.text
    assert (ckpt / "last.ckpt").read_bytes() == b"the new run's first checkpoint"
