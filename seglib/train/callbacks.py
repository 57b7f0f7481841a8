"""How a caller watches and steers a training: the engine calls these hooks, from whatever
thread it runs in. The app's job manager and the CLI's progress bar are two implementations;
none of them may call streamlit (the engine's thread is not a script run).

Hooks receive plain dicts (JSON-able), so a snapshot can be handed to another thread as is.
"""
from __future__ import annotations


class Callback:
    """Override what you need; every hook is optional."""

    def on_train_start(self, info: dict) -> None:
        """``info``: run, config, steps_per_epoch, start_epoch, epochs, device, amp."""

    def on_step_end(self, step: dict) -> None:
        """``step``: epoch, step (in the epoch), steps, global_step, loss, lr, images_per_s."""

    def on_epoch_end(self, record: dict) -> None:
        """``record``: one line of history.jsonl (train_loss, val_loss, lr, metrics, ...)."""

    def on_validation_batch(self, images, masks, predictions, ids: list[str]) -> None:
        """The first validation batch of each epoch (CPU tensors), for live previews."""

    def on_train_end(self, result: dict) -> None:
        """``result``: status (done | cancelled | stopped_early | failed), best_epoch, best, error."""

    def should_stop(self) -> bool:
        """Polled after every step: True cancels the run (last weights are kept)."""
        return False


class Callbacks(Callback):
    """Several callbacks as one."""

    def __init__(self, callbacks=()):
        self.items = [c for c in callbacks if c is not None]

    def on_train_start(self, info):
        for c in self.items:
            c.on_train_start(info)

    def on_step_end(self, step):
        for c in self.items:
            c.on_step_end(step)

    def on_epoch_end(self, record):
        for c in self.items:
            c.on_epoch_end(record)

    def on_validation_batch(self, images, masks, predictions, ids):
        for c in self.items:
            c.on_validation_batch(images, masks, predictions, ids)

    def on_train_end(self, result):
        for c in self.items:
            c.on_train_end(result)

    def should_stop(self) -> bool:
        return any(c.should_stop() for c in self.items)


class ProgressBar(Callback):
    """A tqdm bar on stderr, one per epoch (the CLI's). Each bar opens when its epoch starts, so
    its rate and time left count from there, however seldom the engine reports a step."""

    def __init__(self):
        self.bar = None
        self.steps = self.epochs = 0

    def _open(self, epoch: int, steps: int, epochs: int) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=steps, desc=f"epoch {epoch}/{epochs}", unit="batch", leave=False)

    def on_train_start(self, info):
        self.steps, self.epochs = info["steps_per_epoch"], info["epochs"]
        if info["start_epoch"] <= self.epochs:
            self._open(info["start_epoch"], self.steps, self.epochs)

    def on_step_end(self, step):
        if self.bar is None:
            self._open(step["epoch"], step["steps"], step["epochs"])
        self.bar.update(step["step"] - self.bar.n)  # the engine may report every few steps
        self.bar.set_postfix(loss=f"{step['loss']:.4f}", lr=f"{step['lr']:.2e}")

    def on_epoch_end(self, record):
        import sys

        if self.bar is not None:
            self.bar.close()
            self.bar = None
        scores = "  ".join(f"{k} {record[k]:.4f}" for k in ("train_loss", "val_loss", "miou", "miou_no_bg")
                           if isinstance(record.get(k), float))
        print(f"epoch {record['epoch']}/{record['epochs']}  {scores}  ({record['time']:.1f} s)", file=sys.stderr)
        if record["epoch"] < self.epochs:
            self._open(record["epoch"] + 1, self.steps, self.epochs)

    def on_train_end(self, result):
        if self.bar is not None:
            self.bar.close()
