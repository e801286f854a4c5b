"""Torch Datasets and DataLoaders over `LabelledImages`, for training and validation."""

from __future__ import annotations

import os

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from core.preprocess import PreprocessSpec
from model.data.augment import eval_transform, train_transform
from model.data.folder import LabelledImages, read_image


class ImageDataset(Dataset[tuple[torch.Tensor, int]]):
    """A subset of `LabelledImages`, augmented (train) or centre-cropped (eval)."""

    def __init__(
        self,
        data: LabelledImages,
        indices: list[int],
        spec: PreprocessSpec,
        *,
        train: bool,
        seed: int = 0,
    ) -> None:
        self.data, self.indices, self.spec = data, indices, spec
        self.train, self.seed, self.epoch = train, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Draw different augmentations each epoch (and the same ones on a resumed run)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> tuple[torch.Tensor, int]:
        index = self.indices[position]
        image = read_image(self.data.images[index], self.spec.resize)
        if self.train:
            # Seeded by (seed, epoch, image), not by worker, so any worker count gives
            # the same batches.
            rng = np.random.default_rng((self.seed, self.epoch, index))
            array = train_transform(image, self.spec, rng)
        else:
            array = eval_transform(image, self.spec)
        return torch.from_numpy(array), self.data.labels[index]


def default_workers(data: LabelledImages) -> int:
    """Loader processes: none for images in memory, else half the cores (at least one).

    Augmenting an in-memory image costs about a millisecond against tens for the
    network's step, so a worker process would only take a core from the maths.
    Decoding files is slower, and a core or two for it keeps the step fed.
    """
    if all(not isinstance(image, os.PathLike) for image in data.images):
        return 0
    return max(1, min(4, (os.cpu_count() or 2) // 2))


def epoch_loader(
    dataset: ImageDataset,
    *,
    batch_size: int,
    workers: int,
    epoch: int,
    shuffle: bool,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader for one epoch, its order fixed by (seed, epoch) so resuming repeats it."""
    dataset.set_epoch(epoch)
    order = list(range(len(dataset)))
    if shuffle:
        order = np.random.default_rng((dataset.seed, epoch)).permutation(len(dataset)).tolist()
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=order,
        num_workers=workers,
        pin_memory=pin_memory,
        persistent_workers=False,
    )
