"""`alexnet train`: the schedule, learning, checkpoints, resuming and its errors, end to end."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from cli.main import main
from core.preprocess import PreprocessSpec
from model.architecture import paper_alexnet, torchvision_alexnet
from model.checkpoint import checkpoint_dict, read_checkpoint, save_checkpoint
from model.data.augment import eval_transform
from model.data.folder import SkippedImageWarning
from model.data.shapes import SHAPE_CLASSES, generate_images, write_shapes_dataset
from model.network import AlexNet
from model.train import make_optimizer, start_classifier_small
from model.train_config import TrainConfig
from model.training_loop import CLIP_NORM, WARMUP, Clock, Schedule

TRAINING_KEYS = {
    "dataset",
    "num_train",
    "num_val",
    "epochs",
    "val_accuracy",
    "best_val_accuracy",
    "seconds",
    "seed",
    "optimizer",
    "lr",
    "batch_size",
    "skipped_images",
}
# Tiny runs: 64-pixel shapes (preprocessing scales them up), two per class, batches of 4.
# No time budget unless a test sets one (the last --max-minutes given wins).
TINY = ["--image-size", "64", "--per-class", "2", "--batch-size", "4", "--max-minutes", "0"]


def _optimizer() -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)


# --- schedule and clock ---------------------------------------------------------------


def test_schedule_warms_up_then_decays_to_zero() -> None:
    optimizer = _optimizer()
    schedule = Schedule(optimizer, peak_lr=0.1, total_steps=100)
    rates = []
    for _ in range(100):
        schedule.step()
        rates.append(optimizer.param_groups[0]["lr"])
    peak = int(np.argmax(rates))
    assert peak + 1 == round(WARMUP * 100)
    assert rates[peak] == pytest.approx(0.1)
    assert all(a < b for a, b in itertools.pairwise(rates[: peak + 1]))
    assert all(a >= b for a, b in itertools.pairwise(rates[peak:]))
    assert rates[-1] == pytest.approx(0.0, abs=1e-12)
    assert rates[49] == pytest.approx(
        0.1 * 0.5 * (1 + np.cos(np.pi * (0.5 - WARMUP) / (1 - WARMUP)))
    )


def test_schedule_follows_the_clock_when_time_runs_out_first() -> None:
    schedule = Schedule(_optimizer(), peak_lr=0.1, total_steps=1000)
    schedule.step(time_fraction=0.5)
    assert schedule.progress == 0.5
    schedule.step(time_fraction=0.2)  # progress never goes back
    assert schedule.progress == 0.5
    schedule.step(time_fraction=1.0)
    assert schedule.lr() == 0.0


def test_schedule_state_round_trips_and_a_resumed_run_spreads_its_budget() -> None:
    schedule = Schedule(_optimizer(), peak_lr=0.1, total_steps=10)
    for _ in range(4):
        schedule.step()
    resumed = Schedule(_optimizer(), peak_lr=0.1, total_steps=10)
    resumed.load_state_dict(schedule.state_dict())
    assert resumed.lr() == schedule.lr()
    resumed.step(time_fraction=0.5)  # half of its own budget: half of what was left
    assert resumed.progress == pytest.approx(0.4 + 0.6 * 0.5)


def test_clock_keeps_its_reserve() -> None:
    now = time.monotonic()
    clock = Clock(deadline=now + 100, reserve=30, train_started=now)
    assert 69 < clock.left() <= 70
    assert 0 <= clock.fraction() < 0.01
    assert Clock(deadline=None).left() == float("inf")
    assert Clock(deadline=None).fraction() == 0.0


# --- learning -------------------------------------------------------------------------


def test_loss_falls_on_a_fixed_batch() -> None:
    """Four images, a few steps of the real optimiser: the network must start fitting them."""
    torch.manual_seed(0)
    model = AlexNet(paper_alexnet(len(SHAPE_CLASSES)))
    start_classifier_small(model)
    spec = PreprocessSpec.for_input(227)
    images, labels = generate_images(1, size=64, seed=0)
    batch = torch.from_numpy(np.stack([eval_transform(images[i], spec) for i in (0, 4, 5, 8)]))
    targets = torch.tensor([labels[i] for i in (0, 4, 5, 8)])
    optimizer = make_optimizer(TrainConfig(lr=0.002), model)

    def loss() -> float:
        model.eval()
        with torch.no_grad():
            return float(F.cross_entropy(model(batch), targets))

    before = loss()
    for _ in range(4):
        model.train()
        optimizer.zero_grad()
        F.cross_entropy(model(batch), targets).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP_NORM)  # as training does
        optimizer.step()
    assert loss() < 0.7 * before


# --- the command, end to end ----------------------------------------------------------


def _train(*args: str) -> int:
    return main(["train", *TINY, *args])


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One epoch on a small ImageFolder with one corrupt file: (data folder, out folder)."""
    root = tmp_path_factory.mktemp("shapes")
    write_shapes_dataset(root, per_class=2, size=64, seed=0)
    (root / "circle" / "broken.jpg").write_bytes(b"\xff\xd8 not really a JPEG")
    out = tmp_path_factory.mktemp("checkpoints")
    with pytest.warns(SkippedImageWarning, match="broken.jpg"):
        assert _train("--dataset", str(root), "--epochs", "1", "--out", str(out)) == 0
    return root, out


def test_train_writes_last_and_best_with_metadata(folder_run: tuple[Path, Path]) -> None:
    _, out = folder_run
    last, best = read_checkpoint(out / "last.pt"), read_checkpoint(out / "best.pt")
    assert last["epoch"] == best["epoch"] == 1
    assert last["labels"] == sorted(SHAPE_CLASSES)  # the folder names, sorted
    assert last["variant"] == "paper"
    training: dict[str, Any] = last["training"]
    assert set(training) >= TRAINING_KEYS
    assert training["skipped_images"] == 1
    assert (training["num_train"], training["num_val"]) == (10, 10)
    assert training["epochs"] == 1
    assert 0.0 <= training["val_accuracy"] <= training["best_val_accuracy"] <= 1.0
    assert last["optimizer"] is not None
    assert last["scheduler"]["steps"] == 3  # ceil(10 / 4)
    assert not list(out.glob("*.partial"))


def test_resume_continues_from_the_saved_epoch(
    folder_run: tuple[Path, Path], tmp_path: Path
) -> None:
    root, out = folder_run
    before = read_checkpoint(out / "last.pt")
    with pytest.warns(SkippedImageWarning):
        status = _train(
            "--dataset", str(root), "--epochs", "2", "--resume", str(out / "last.pt"),
            "--out", str(tmp_path),
        )  # fmt: skip
    assert status == 0
    after = read_checkpoint(tmp_path / "last.pt")
    assert after["epoch"] == after["training"]["epochs"] == 2
    assert after["scheduler"]["steps"] == 2 * before["scheduler"]["steps"]
    assert after["training"]["seconds"] > before["training"]["seconds"]
    momentum = next(iter(after["optimizer"]["state"].values()))["momentum_buffer"]
    assert momentum.abs().sum() > 0


def test_time_budget_stops_cleanly_after_a_step(tmp_path: Path) -> None:
    assert _train("--max-minutes", "0.001", "--epochs", "5", "--out", str(tmp_path)) == 0
    training = read_checkpoint(tmp_path / "last.pt")["training"]
    assert training["epochs"] == 1
    assert training["stopped_by_time_budget"] is True
    assert (tmp_path / "best.pt").is_file()


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("alexnet train: error: ")
    return error


def test_resuming_another_architecture_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = AlexNet(torchvision_alexnet(len(SHAPE_CLASSES)))
    path = tmp_path / "torchvision.pt"
    labels = list(SHAPE_CLASSES)
    save_checkpoint(path, checkpoint_dict(other, labels=labels, epoch=1, training={}))
    assert _train("--resume", str(path), "--out", str(tmp_path)) == 2
    error = _one_line_error(capsys)
    assert "does not fit the paper AlexNet" in error
    assert "Traceback" not in capsys.readouterr().err


def test_resuming_raw_weights_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "alexnet-owt.pth"
    torch.save(AlexNet(paper_alexnet(10)).state_dict(), path)
    assert _train("--resume", str(path), "--out", str(tmp_path)) == 2
    assert "is not an alexnet checkpoint" in _one_line_error(capsys)


def test_resuming_on_other_classes_is_a_one_line_error(
    folder_run: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The folder run's labels are the class names sorted; the shapes set keeps its order.
    _, out = folder_run
    assert _train("--resume", str(out / "last.pt"), "--out", str(tmp_path)) == 2
    assert "was trained on the classes" in _one_line_error(capsys)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_asking_for_a_missing_gpu_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _train("--device", "cuda", "--out", str(tmp_path)) == 2
    assert "no CUDA GPU" in _one_line_error(capsys)


def test_help_describes_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--dataset", "--variant", "--epochs", "--batch-size", "--lr", "--momentum",
                   "--weight-decay", "--optimizer", "--seed", "--max-minutes", "--out",
                   "--resume", "--device", "--per-class", "--workers"):  # fmt: skip
        assert option in text
