"""Console progress: Rich bars on a terminal, plain lines otherwise (pipes, nohup, CI), or nothing.

Rich mode shows an epoch bar and a batch bar with samples/s, the running loss and the ETA, and prints
one summary line per epoch above them. Plain mode prints the same facts as lines: one per train
read-out and one per epoch, never a control code.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Column

from core.training.callback import Callback
from core.training.phases import setup_phase_text

if TYPE_CHECKING:  # pragma: no cover
    from core.training.trainer import Trainer


def resolve_mode(mode: str, console: Console) -> str:
    """'auto' becomes 'rich' on a terminal and 'plain' otherwise."""
    if mode == "auto":
        return "rich" if console.is_terminal and not console.is_dumb_terminal else "plain"
    return mode


class ProgressCallback(Callback):
    """Shows training progress on ``console`` in ``mode`` ('auto', 'rich', 'plain' or 'none')."""

    def __init__(self, mode: str = "auto", console: Console | None = None) -> None:
        self.console = console or Console(emoji=False, highlight=False)
        self.mode = resolve_mode(mode, self.console)
        self._progress: Progress | None = None
        self._epoch_task: Any = None
        self._batch_task: Any = None
        self._epoch_t0 = time.monotonic()
        self._last_train: dict[str, Any] = {}

    @property
    def state_key(self) -> str:
        return "ProgressCallback"

    # -- lifecycle ------------------------------------------------------------------------------

    def on_setup_phase(self, trainer: Trainer, phase: str) -> None:
        # seconds pass in each (imports, data, a compile): say what is happening, so nobody wonders
        if self.mode != "none" and trainer.is_global_zero:
            self._print(f"  {setup_phase_text(phase, trainer.cfg)}…")

    def on_fit_start(self, trainer: Trainer) -> None:
        name = trainer.run.name if trainer.run is not None else trainer.cfg.run.name
        where = f" → {trainer.run.path}" if trainer.run is not None else ""
        tree = trainer.model_tree or {}
        n_params, total = tree.get("trainable_params"), tree.get("total_params")
        params = f", {n_params:,} trainable params" if isinstance(n_params, int) else ""
        if isinstance(n_params, int) and isinstance(total, int) and 0 < n_params < total:
            params += f" of {total:,} ({100 * n_params / total:.2g} %)"  # fine-tuning part of a model, LoRA
        lora = tree.get("lora")
        if isinstance(lora, dict):
            params += f", LoRA rank {lora.get('rank')} on {lora.get('layers')} adapters"
        # the GPU defaults (docs/gpu.md) are said on the first line: what `auto` chose is part of the run
        compute = f" ({trainer.runtime.describe()})" if trainer.runtime is not None else ""
        head = (
            f"{name}: {trainer.built.name} on {trainer.data.info.get('source', trainer.cfg.data.source)} ({len(trainer.data.train)} train / "
            f"{len(trainer.data.val)} val, {trainer.num_classes} classes{params}), {trainer.device}{compute}, "
            f"{trainer.cfg.trainer.epochs} epochs x {len(trainer.train_loader)} batches{where}"
        )
        if trainer.resumed_from is not None:
            epoch, batch = trainer.position
            head += f"\nresuming at epoch {epoch + 1}, batch {batch} (step {trainer.global_step})"
        report = trainer.built.load_report if trainer.resumed_from is None else None
        if report is not None:
            # on the console too, not only in events.jsonl: a partial load changes what the run means
            head += f"\nweights: {report.summary()}"
        head += "".join(f"\nwarning: {notice}" for notice in trainer.notices)
        if self.mode == "none":
            return
        self._print(head)
        if self.mode == "rich":
            # The running figures come last and are cut with an ellipsis, so on a narrow terminal
            # (80 columns) the bars, counts and times stay whole.
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(bar_width=20 if self.console.width < 100 else 30),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[info]}", table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1)),
                console=self.console,
                expand=True,  # the figures' column takes what is left of the line
                transient=False,
                refresh_per_second=4,
            )
            self._progress.start()
            epoch, _ = trainer.position
            self._epoch_task = self._progress.add_task(
                "epochs", total=trainer.cfg.trainer.epochs, completed=epoch, info=""
            )
            self._batch_task = self._progress.add_task("batches", total=len(trainer.train_loader), info="")

    def on_train_epoch_start(self, trainer: Trainer) -> None:
        self._epoch_t0 = time.monotonic()
        if self._progress is not None:
            # reset, not update: the speed and ETA of the batch bar restart with each epoch
            self._progress.reset(
                self._batch_task,
                description=f"epoch {trainer.epoch + 1}/{trainer.cfg.trainer.epochs}",
                completed=trainer.batches_done,
                total=len(trainer.train_loader),
                info="",
            )

    def on_train_batch_end(self, trainer: Trainer, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._progress is not None:
            self._progress.update(self._batch_task, completed=batch_idx + 1)

    def on_validation_start(self, trainer: Trainer) -> None:
        if self._progress is not None:
            self._progress.update(self._batch_task, info=f"{self._train_info()}  validating…")

    def on_log(self, trainer: Trainer, split: str, metrics: dict[str, Any]) -> None:
        if split != "train":
            return
        self._last_train = metrics
        if self._progress is not None:
            self._progress.update(self._batch_task, info=self._train_info())
        elif self.mode == "plain":
            n = len(trainer.train_loader)
            self._print(
                f"epoch {trainer.epoch + 1}/{trainer.cfg.trainer.epochs} batch {trainer.batches_done}/{n} "
                f"step {trainer.global_step}/{trainer.total_steps}  {self._train_info()}"
            )

    def on_train_epoch_end(self, trainer: Trainer) -> None:
        m = trainer.callback_metrics
        parts = [f"epoch {trainer.epoch + 1}/{trainer.cfg.trainer.epochs}"]
        if "train/loss" in m:
            parts.append(f"train loss {m['train/loss']:.4f} acc {m.get('train/acc', float('nan')):.3f}")
        if trainer.last_eval.get("val") is not None and trainer.epoch_closed:
            parts.append(
                f"val loss {m.get('val/loss', float('nan')):.4f} acc {m.get('val/acc', float('nan')):.3f} "
                f"f1 {m.get('val/f1_macro', float('nan')):.3f}"
            )
        if trainer.best is not None:
            parts.append(f"best {trainer.best['metric']} {trainer.best['value']:.4f}")
        parts.append(f"{time.monotonic() - self._epoch_t0:.1f}s")
        if self.mode != "none":
            self._print("  ".join(parts[:1]) + ": " + " | ".join(parts[1:]))
        if self._progress is not None:
            epoch, _ = trainer.position
            self._progress.update(self._epoch_task, completed=epoch)
            self._progress.update(self._batch_task, info=self._train_info())

    def on_fit_end(self, trainer: Trainer) -> None:
        self._close()

    def on_exception(self, trainer: Trainer, exception: BaseException) -> None:
        self._close()

    def teardown(self, trainer: Trainer, stage: str) -> None:
        self._close()

    # -- helpers --------------------------------------------------------------------------------

    def _train_info(self) -> str:
        m = self._last_train
        if not m:
            return ""
        return (
            f"loss {m['loss']:.4f} acc {m['acc']:.3f} lr {m['lr']:.2e} "
            f"{m['samples_per_s']:.0f} samples/s data_wait {m['data_wait'] * 100:.0f}%"
        )

    def _print(self, text: str) -> None:
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False)
        else:
            self.console.print(text, markup=False, highlight=False, soft_wrap=True)
            try:
                self.console.file.flush()
            except (AttributeError, ValueError):
                pass

    def _close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
