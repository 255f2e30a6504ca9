"""Writes the run directory: run.json status and progress, config.yaml, model.json, metrics and events.

The format is documented in ``docs/run-format.md``. Metric rows go through ``RunWriter.log_metrics``,
which also keeps ``metrics.columns`` (their numbers as NumPy columns); viewers read everything with
``core.runs.RunReader``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from core.config import config_to_yaml
from core.data.bundle import shape_json
from core.errors import UserError
from core.runs import CONFIG_JSON, CONFIG_YAML, MODEL_JSON
from core.training.callback import Callback

if TYPE_CHECKING:  # pragma: no cover
    from core.training.trainer import Trainer

# run.json is rewritten atomically (with fsyncs); progress updates at most this often
PROGRESS_EVERY_S = 2.0


class RecorderCallback(Callback):
    """The trainer's side of the run-directory contract (needs ``trainer.run``)."""

    def __init__(self) -> None:
        self._last_progress = 0.0

    def on_fit_start(self, trainer: Trainer) -> None:
        run = trainer.run
        if run is None:
            return
        run.write_text(CONFIG_YAML, config_to_yaml(trainer.cfg))
        # the same as JSON: a table of 1,000 runs reads it in milliseconds where YAML takes a second
        run.write_json(CONFIG_JSON, trainer.cfg.model_dump(mode="json"))
        if trainer.model_tree is not None:
            run.write_json(MODEL_JSON, trainer.model_tree)
        epoch, batch = trainer.position
        tree = trainer.model_tree or {}
        run.set_status(
            "running",
            error=None,
            stop_reason=None,
            epoch=epoch,
            epochs=trainer.cfg.trainer.epochs,
            batch=batch,
            batches_per_epoch=len(trainer.train_loader),
            step=trainer.global_step,
            steps_per_epoch=trainer.steps_per_epoch,
            total_steps=trainer.total_steps,
            model=trainer.built.name,
            head=trainer.built.head_path,
            params={"total": tree.get("total_params"), "trainable": tree.get("trainable_params")},
            dataset=trainer.data.info.get("source", trainer.cfg.data.source),
            task=getattr(trainer.data, "task", None),
            input_shape=shape_json(trainer.data.input_shape),
            class_names=list(trainer.class_names),
            num_classes=trainer.num_classes,
            train_size=len(trainer.data.train),
            val_size=len(trainer.data.val),
            batch_size=trainer.cfg.data.batch_size,
            device=str(trainer.device),
            precision=trainer.precision,
            seed=trainer.cfg.run.seed,
            notes=trainer.cfg.run.notes,
            best=trainer.best,
            resumed_from=str(trainer.resumed_from) if trainer.resumed_from else None,
            resumes=int(run.info.get("resumes", 0)) + (1 if trainer.resumed_from else 0),
            # where this process took over, so a viewer's ETA counts neither the time a run lay stopped
            # before a resume nor (with paused_seconds) the time a pause held it
            session_started=time.time(),
            session_step=trainer.global_step,
            paused_seconds=0.0,
        )
        if trainer.resume_changes:
            # what a resume changed, kept for good (config.yaml only holds the latest)
            record = {"time": time.time(), "step": trainer.global_step,
                      "changes": {k: [a, b] for k, (a, b) in trainer.resume_changes.items()}}
            run.update(config_changes=[*(run.info.get("config_changes") or []), record])
        if trainer.resumed_from is not None:
            run.log_event(
                "resumed",
                f"resumed from {trainer.resumed_from} at epoch {epoch + 1}, batch {batch}, step {trainer.global_step}",
                checkpoint=str(trainer.resumed_from),
                epoch=epoch,
                batch=batch,
                step=trainer.global_step,
            )
        else:
            run.log_event("started", f"training {trainer.built.name} on {trainer.data.info.get('source', trainer.cfg.data.source)} ({trainer.device})")
            report = trainer.built.load_report
            if report is not None:
                run.log_event("weights", report.summary(), report=_load_report(report))
        for group in _groups(trainer):
            run.log_event("lr_group", f"group {group.get('name')}: lr {group.get('lr')}", **group)
        run.flush()

    def on_log(self, trainer: Trainer, split: str, metrics: dict[str, Any]) -> None:
        run = trainer.run
        if run is None:
            return
        run.log_metrics(trainer.global_step, trainer.epoch, split, metrics)
        now = time.monotonic()
        if split != "train" or now - self._last_progress >= PROGRESS_EVERY_S:
            self._last_progress = now
            self._progress(trainer)
        if split != "train":
            # once per validation: a follower (a sweep reporting to its pruner, a viewer) sees the
            # row together with run.json's new best instead of a flush budget later
            run.flush()

    def on_train_batch_end(self, trainer: Trainer, outputs: Any, batch: Any, batch_idx: int) -> None:
        if trainer.run is not None:
            trainer.run.flush_if_due()  # a monotonic-clock check unless a line is due

    def on_train_epoch_end(self, trainer: Trainer) -> None:
        self._progress(trainer)
        if trainer.run is not None:
            trainer.run.flush()

    def on_fit_end(self, trainer: Trainer) -> None:
        run = trainer.run
        if run is None:
            return
        self._progress(trainer, final=True)
        reason = trainer.stop_reason or ("completed all epochs" if trainer.status == "finished" else None)
        run.log_event(trainer.status, f"run {trainer.status}" + (f": {reason}" if reason else ""), reason=reason)
        run.set_status(trainer.status, stop_reason=reason, error=None)
        run.flush()

    def on_exception(self, trainer: Trainer, exception: BaseException) -> None:
        run = trainer.run
        if run is None:
            return
        started = trainer.fit_started_at is not None
        if trainer.resumed_from is not None and not started and isinstance(exception, UserError):
            return  # a resume refused for bad input changes nothing: the run's record stays as it was
        status = trainer.status if trainer.status in ("failed", "interrupted") else "failed"
        message = trainer.error or str(exception) or type(exception).__name__
        extra = {}
        tb = getattr(exception, "traceback", None)
        if tb:
            extra["traceback"] = tb
        run.log_event("error" if status == "failed" else "interrupted", message, **extra)
        if started:  # before that, the trainer's position and metrics are not the run's yet
            self._progress(trainer, final=True)
        run.set_status(status, error=message)
        run.flush()

    def teardown(self, trainer: Trainer, stage: str) -> None:
        if trainer.run is not None:
            trainer.run.flush()

    def _progress(self, trainer: Trainer, final: bool = False) -> None:
        run = trainer.run
        if run is None:
            return
        epoch, batch = trainer.position
        metrics = {k: v for k, v in trainer.callback_metrics.items()}
        fields: dict[str, Any] = {
            "epoch": epoch,
            "batch": batch,
            "step": trainer.global_step,
            "best": trainer.best,
            "metrics": metrics,
            "train_seconds": round(trainer.train_seconds, 3),
            "updated": time.time(),
        }
        if trainer.nonfinite_skipped:
            fields["nonfinite_skipped"] = trainer.nonfinite_skipped
        if final:
            fields["frozen"] = _frozen(trainer)
        run.update(**fields)


def _groups(trainer: Trainer) -> list[dict[str, Any]]:
    try:
        return list(trainer.finetuner.groups_summary())
    except Exception:  # noqa: BLE001 - informative only
        return []


def _frozen(trainer: Trainer) -> list[str]:
    try:
        return list(trainer.finetuner.frozen_modules())
    except Exception:  # noqa: BLE001
        return []


def _load_report(report: Any) -> dict[str, Any]:
    return {
        "source": str(report.source),
        "matched": len(report.matched),
        "missing": list(report.missing),
        "unexpected": list(report.unexpected),
        "mismatched": [{"key": k, "file": list(a), "model": list(b)} for k, a, b in report.mismatched],
        "head_only": bool(report.head_only),
    }
