"""Session fixtures: one exported model, real photos, and the real server on a loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from tests.support import RunningServer, encode, running_server

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera")
LABELS = [f"class_{i}" for i in range(10)]
TEST_ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="session")
def artefact_dir() -> Path:
    """Where tests leave screenshots and logs for people to look at."""
    TEST_ARTIFACTS.mkdir(exist_ok=True)
    return TEST_ARTIFACTS


@pytest.fixture(scope="session")
def photo_arrays() -> dict[str, np.ndarray]:
    """Real photographs that ship with scikit-image (no download)."""
    return {name: getattr(skdata, name)() for name in PHOTOS}


@pytest.fixture(scope="session")
def photos(photo_arrays: dict[str, np.ndarray]) -> dict[str, bytes]:
    """The photographs as JPEG files."""
    return {name: encode(array, quality=90) for name, array in photo_arrays.items()}


@pytest.fixture(scope="session")
def photo_folder(
    tmp_path_factory: pytest.TempPathFactory, photo_arrays: dict[str, np.ndarray]
) -> Path:
    """The photographs as an ImageFolder (one class), for export verification."""
    root = tmp_path_factory.mktemp("photos")
    (root / "photos").mkdir()
    for name, array in photo_arrays.items():
        Image.fromarray(array).save(root / "photos" / f"{name}.png")
    return root


@pytest.fixture(scope="session")
def checkpoint_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded, untrained paper AlexNet for 10 classes, saved as `alexnet train` would."""
    import torch

    from model.architecture import paper_alexnet
    from model.checkpoint import checkpoint_dict, save_checkpoint
    from model.network import AlexNet

    torch.manual_seed(0)
    model = AlexNet(paper_alexnet(len(LABELS)))
    path = tmp_path_factory.mktemp("checkpoints") / "seeded.pt"
    save_checkpoint(
        path,
        checkpoint_dict(
            model, labels=LABELS, epoch=0, training={"dataset": "none (seeded weights)"}
        ),
    )
    return path


@pytest.fixture(scope="session")
def exported_artifacts(
    tmp_path_factory: pytest.TempPathFactory, checkpoint_path: Path, photo_folder: Path
) -> Path:
    """Artifacts written by the project's own `alexnet export` (fp32 and int8)."""
    from cli.main import main

    out = tmp_path_factory.mktemp("artifacts")
    status = main(
        [
            "export",
            "--checkpoint",
            str(checkpoint_path),
            "--out",
            str(out),
            "--data",
            str(photo_folder),
            "--int8",
        ]
    )
    assert status == 0
    return out


@pytest.fixture(scope="session")
def server(exported_artifacts: Path, artefact_dir: Path) -> Iterator[RunningServer]:
    """The real service (`alexnet serve`) on a loopback port, shared by the session."""
    with running_server(
        exported_artifacts, artefact_dir / "logs", max_batch_wait_ms="20"
    ) as running:
        yield running
