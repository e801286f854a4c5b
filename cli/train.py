"""`alexnet train`: its options are `TrainConfig`'s fields."""

from __future__ import annotations

import inspect
import time

from model.train_config import TrainConfig


class Train(TrainConfig):
    __doc__ = inspect.cleandoc(TrainConfig.__doc__ or "")

    def cli_cmd(self) -> None:
        from model.train import train  # torch: only when training

        started = time.monotonic()
        result = train(self)
        print(
            f"done: {result['epochs']} epochs, val accuracy {result['val_accuracy']:.1%} "
            f"(best {result['best_val_accuracy']:.1%} at epoch {result['best_epoch']}), "
            f"{time.monotonic() - started:.0f} s; wrote {self.out / 'last.pt'} and "
            f"{self.out / 'best.pt'}"
        )
