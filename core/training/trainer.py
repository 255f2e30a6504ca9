"""The trainer: a readable fit loop that emits Lightning-style hooks to its callbacks.

``fit`` reads top to bottom like a recipe: :meth:`Trainer.setup` builds the data, model, fine-tuner,
optimizer, schedule and loaders from the config and, when resuming, hands the checkpoint to
:meth:`Trainer._restore` (the one place saved state comes back); ``_train`` runs the epochs of
training steps and validation; :meth:`Trainer.cleanup` releases the loaders' workers, the signal
handlers and the run's files. Everything else — the run directory, checkpoints, early stopping,
progress, TensorBoard, telemetry, control — is a callback (see ``callbacks/``), and callbacks use
the public surface listed in ``docs/architecture.md``.

The loop never synchronises with the device per step: loss, correct predictions and sample counts
accumulate on the device and are read every ``logging.every_n_steps`` optimizer steps and at the end
of each epoch. Resume is exact: the checkpoint holds the position (completed epochs, batches done in
the current epoch, optimizer steps) and every RNG; the data order is a function of (seed, epoch).

Under torchrun (``WORLD_SIZE`` > 1) the same loop trains with DistributedDataParallel; what differs is
behind :attr:`Trainer.strategy` (:mod:`core.training.strategy`): every rank takes its shard of each
epoch, rank 0 alone writes the run directory, and the ranks agree at every optimizer step on signals,
stop requests and control polls so that all of them stop or apply a command at the same step (see
``docs/distributed.md``).
"""

from __future__ import annotations

import gc
import math
import signal
import threading
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from core import __version__
from core.config import Config
from core.errors import ConfigError, FtuiError, RunError, TrainingFailed, UserError
from core.lora.names import needs_base
from core.runs import DISK_FULL, MODEL_JSON, RUN_JSON, RunStatus, RunWriter
from core.training import distributed
from core.training.callback import Callback
from core.models.forward import call_model, check_forward, to_device
from core.training.checkpoint import (
    CHECKPOINT_FORMAT, NonFiniteWeights, all_finite, capture_rng, load_file, restore_rng, save_file, unwrap_model,
)
from core.training.clock import LogWindow, StepClock
from core.training.metrics import ClassificationMetrics, TrainAccumulator, scalar_metrics
from core.training.nonfinite import NonFiniteSkip, gradients_finite
from core.training.runtime import (
    RuntimePlan, autocast, check_precision, configure_backends, nondeterministic_op, plan_runtime, resolve_device,
    resolve_precision, seed_everything, steady_malloc, watch_nondeterminism,
)
from core.training.resume import check_resume
from core.training.schedule import LrSchedule, apply_lr
from core.training.strategy import Strategy


class Trainer:
    """Trains ``cfg`` and reports to callbacks; see ``docs/architecture.md`` for the attributes.

    Args:
        cfg: the whole run configuration.
        callbacks: extra callbacks, called after the default ones built from ``cfg``.
        run_dir: an existing run directory to continue (status ``created`` from the launcher, or any
            status when resuming). Default: a fresh ``<cfg.run.root>/<cfg.run.name>``.
        record: False runs without a run directory (no recorder, checkpoints or TensorBoard).
        default_callbacks: False uses only ``callbacks`` (for tests and notebooks).
        model: an ``nn.Module``, or a callable returning one, that replaces ``cfg.model.name``
            (the Python API, ``ftui.run(model=...)``).
        data: splits (a dict or object with train, val, ...), or a callable returning them, that
            replace ``cfg.data.source`` (``ftui.run(data=...)``).
    """

    def __init__(
        self,
        cfg: Config,
        *,
        callbacks: list[Callback] | None = None,
        run_dir: Path | str | None = None,
        record: bool = True,
        default_callbacks: bool = True,
        model: Any = None,
        data: Any = None,
    ) -> None:
        self.cfg = cfg
        self.model_source = model  # objects from the Python API, used by setup() instead of the config's names
        self.data_source = data
        self.record = record
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.run: RunWriter | None = None
        self.strategy = Strategy.from_env(cfg.trainer.devices)
        self.device = self.strategy.setup_environment(resolve_device(cfg.trainer.device))
        check_precision(self.device, resolve_precision(cfg.trainer.precision, self.device))
        self.callbacks: list[Callback] = []
        if default_callbacks:
            from core.training.callbacks import default_callbacks as _defaults

            self.callbacks.extend(_defaults(cfg, record=record, rank=self.strategy.rank))
        self.callbacks.extend(callbacks or [])
        self._hook_key: tuple[int, int] | None = None
        self._hook_table: dict[str, list[Any]] = {}

        # built by setup()
        self.data: Any = None
        self.built: Any = None
        self.model: nn.Module | None = None
        self.train_model: nn.Module | None = None  # what trains: DDP-wrapped and/or compiled, or the model
        self.eval_model: nn.Module | None = None  # what evaluates: never DDP (ranks see uneven shards)
        self.finetuner: Any = None
        self.lora: Any = None  # core.lora.adapters.LoraAdapters with finetune.lora
        self.optimizer: torch.optim.Optimizer | None = None
        self.schedule: LrSchedule | None = None
        self.scaler: torch.amp.GradScaler | None = None
        self.runtime: RuntimePlan | None = None  # precision and memory format as resolved for the device
        self.criterion: nn.Module | None = None
        self.train_loader: Any = None
        self.val_loader: Any = None
        self.test_loader: Any = None
        self.model_tree: dict[str, Any] | None = None
        self.class_names: list[str] = []
        self.example_input: Any = None  # two validation samples' inputs on the device (model tree, graph)
        self.notices: list[str] = []  # warnings from setup worth printing (code changed since the checkpoint)

        # progress
        self.epoch = 0  # current epoch (0-based)
        self.global_step = 0  # optimizer steps taken
        self.batch_idx = 0  # index of the batch being trained (hooks' batch_idx)
        self.batches_done = 0  # batches of the current epoch already trained
        self.epoch_closed = False  # current epoch fully trained and validated
        self.steps_per_epoch = 0
        self.total_steps = 0
        self.resumed_from: Path | None = None
        self.resume_changes: dict[str, tuple[Any, Any]] = {}
        """Config keys a resume changed (safe ones only; ``core.training.resume``): ``{key: (then, now)}``."""

        # stopping
        self.should_stop = False
        self.stop_reason: str | None = None
        self.stop_status = "stopped"
        self.signal_received: int | None = None
        self.poll_now = False  # distributed: the ranks agreed to read the control channel at the next step
        self.status = "created"
        self.error: str | None = None

        # metrics and time
        self.callback_metrics: dict[str, float] = {}
        self.history: dict[str, list[float]] = {}
        self.last_eval: dict[str, dict[str, Any]] = {}
        self.nondeterministic_ops: list[str] = []  # deterministic: warn — the operations torch warned about
        self.nonfinite_skipped = 0  # batches with a non-finite loss (skip mode), as of the last read-out
        self._skip_guard: NonFiniteSkip | None = None
        self.fit_started_at: float | None = None
        self.clock = StepClock()  # training time: epochs' training only, pauses excluded
        self._window = TrainAccumulator(self.device)  # the logging window's device figures ...
        self._window_host = LogWindow()  # ... and its host figures

        self._setup_done = False
        self._old_handlers: dict[int, Any] = {}
        self._pending_rng: dict[str, Any] | None = None  # the checkpoint's RNG, restored when training starts
        self._pending_signal: int | None = None  # a signal not yet agreed on by all ranks

    # -----------------------------------------------------------------------------------------
    # fit: setup -> _restore -> _train -> cleanup
    # -----------------------------------------------------------------------------------------

    def fit(self, resume_from: Path | str | None = None) -> None:
        """Train until the epochs, steps or time run out, early stopping, a stop request or a signal.

        Raises :class:`TrainingFailed` (non-finite loss, out of memory, an exception; the run is
        marked ``failed``), a :class:`UserError` for bad input, or ``KeyboardInterrupt`` on a second
        interrupt. After an interrupt or stop request it returns normally; see :attr:`exit_code`.
        """
        ckpt = None
        if resume_from is not None:
            self.resumed_from = Path(resume_from)
            ckpt = load_file(self.resumed_from)
            # first, before the run is touched: a config that cannot continue it is refused with nothing written
            self.resume_changes = check_resume(self.cfg, ckpt, source=self.resumed_from,
                                               model_given=self.model_source is not None)
        self._install_signal_handlers()
        try:
            if self.run_dir is not None:
                self._open_run(resume=ckpt is not None)  # before setup: a resume's warnings land in it
            self.setup(ckpt)
            if self.run is None:
                self._open_run(resume=False)  # after setup: a config that cannot build leaves no directory
            # every rank needs the path (control commands, error files); only rank 0 writes there
            path = self.strategy.broadcast(str(self.run.path) if self.run is not None else None)
            if path is not None:
                self.run_dir = Path(path)
            self._train()
        except KeyboardInterrupt as exc:
            self.status, self.error = "interrupted", "interrupted twice: stopped at once without a checkpoint"
            self._call_safely("on_exception", exc)
            raise
        except BaseException as exc:  # noqa: BLE001 - every failure must reach the run directory
            failure = self.strategy.name_failure(self._as_failure(exc), exc, self.run_dir)
            self.status, self.error = "failed", str(failure)
            self._call_safely("on_exception", failure)
            if failure is exc:
                raise
            raise failure from exc
        finally:
            self.cleanup()

    def setup(self, ckpt: dict[str, Any] | None = None, *, weights_only: bool = False) -> None:
        """Build data, model, fine-tuner, optimizer, schedule and loaders from the config, then restore ``ckpt``.

        With ``weights_only`` only the model weights and the data statistics of ``ckpt`` are used
        (evaluation); otherwise everything needed to continue training exactly is restored.
        """
        from core.data import build_data, build_loader
        from core.finetune import FineTuner
        from core.models import build_model

        cfg = self.cfg
        seed_everything(cfg.run.seed)
        configure_backends(cfg.trainer.deterministic, cfg.trainer.cudnn_benchmark, tf32=cfg.trainer.tf32,
                           device=self.device)
        if cfg.trainer.steady_malloc:
            steady_malloc()  # before the loaders fork their workers, which inherit it
        if cfg.trainer.cpu_threads is not None:
            torch.set_num_threads(cfg.trainer.cpu_threads)

        # a resumed or evaluated run's data keeps the statistics fitted when it started
        fitted = (ckpt.get("data") or {}).get("fitted") if ckpt else None
        self._call("on_setup_phase", "data")
        self.data = build_data(cfg.data, cfg.run.seed, fitted=fitted, data=self.data_source)
        self.class_names = list(self.data.class_names)
        model_cfg = self._model_config(ckpt)
        self._call("on_setup_phase", "model")
        self.built = build_model(
            model_cfg, self.data.num_classes, self.data.input_shape, head_dropout=cfg.finetune.head_dropout,
            facts=self.data.facts(), model=self.model_source,
            compression=ckpt.get("compression") if ckpt else None,  # a pruned model's shapes
        )
        self.model = model = self.built.model
        if cfg.finetune.lora is not None:
            # before the fine-tuner sees the parameters: PEFT freezes the base and adds the adapters in place
            from core.lora.adapters import apply_lora
            from core.lora.base import base_file

            self.lora = apply_lora(model, cfg.finetune.lora, self.built.head_path, base_file=base_file(model_cfg),
                                   model_cfg=model_cfg)
        model.to(self.device)
        self.runtime = plan_runtime(cfg.trainer, self.device, image=self.data.task == "image")
        if self.runtime.channels_last:
            model.to(memory_format=torch.channels_last)
        # one sample batch through the model before anything trains: a model that does not fit its
        # data is bad input (exit 2, the inputs it got), not a traceback at the first step
        self.example_input = to_device(self.data.example("val", 2), self.device)
        try:
            check_forward(model, self.example_input, self.data.num_classes, label=self.built.name)
        except UserError as exc:
            refusal = self._deterministic_refusal(exc.__cause__)
            if refusal is None:
                raise
            raise refusal from None
        self.finetuner = FineTuner(model, cfg.finetune, cfg.optim, self.built.head_path)
        self.finetuner.setup()
        self.optimizer = self.finetuner.build_optimizer()

        # batches come out of the loaders on the device, images normalised there (core.data.device)
        shard = {"rank": self.strategy.rank, "world_size": self.strategy.world_size, "device": self.device,
                 "channels_last": self.runtime.channels_last}
        self.train_loader = build_loader(self.data.train, cfg.data, split="train", seed=cfg.run.seed, **shard)
        self.val_loader = build_loader(self.data.val, cfg.data, split="val", seed=cfg.run.seed, **shard)
        accum = cfg.trainer.accumulate_grad_batches
        self.steps_per_epoch = max(1, math.ceil(len(self.train_loader) / accum))
        self.total_steps = self.steps_per_epoch * cfg.trainer.epochs
        if cfg.trainer.max_steps is not None:
            self.total_steps = min(self.total_steps, cfg.trainer.max_steps)
        self.schedule = LrSchedule(cfg.schedule, self.steps_per_epoch, self.total_steps)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "16-mixed")
        self.criterion = nn.CrossEntropyLoss(label_smoothing=cfg.trainer.label_smoothing)

        if ckpt is not None:
            self._restore(ckpt, weights_only=weights_only)
        # after the restore: the trainable set (DDP) and the lrs (the tree) are the checkpoint's
        if cfg.trainer.compile:
            self._call("on_setup_phase", "compile")
        self.train_model, self.eval_model = self.strategy.wrap(model, compile_=cfg.trainer.compile)
        self.refresh_model_tree()
        # identical initial weights on every rank (DDP also broadcasts rank 0's); own dropout streams per rank
        self.strategy.seed_rank(cfg.run.seed)
        self._setup_done = True

    def _model_config(self, ckpt: dict[str, Any] | None) -> Any:
        """The model section to build with: a checkpoint's weights replace ``model.weights`` (whose file
        may be gone by now), except for a LoRA checkpoint that leaves its base to that file."""
        model_cfg = self.cfg.model
        if ckpt is None or model_cfg.weights is None and not needs_base(ckpt):
            return model_cfg
        if not needs_base(ckpt):
            return model_cfg.model_copy(update={"weights": None})
        from core.lora.base import locate

        weights, notices = locate(ckpt["lora"]["base"], model_cfg.weights, checkpoint=self.resumed_from or "checkpoint")
        for message in notices:
            self.notices.append(message)
            self.log_event("warning", message)
        return model_cfg.model_copy(update={"weights": weights})

    def _restore(self, ckpt: dict[str, Any], *, weights_only: bool = False) -> None:
        """Everything a checkpoint brings back, in one place: weights, fine-tuning state, optimizer,
        schedule, scaler, position, metrics, callbacks' states and (when training starts) the RNG."""
        assert self.model is not None and self.optimizer is not None
        self._warn_if_code_changed(ckpt)
        if self.lora is not None:
            self.lora.load_state_dict(ckpt["model"], source=self.resumed_from or "checkpoint")
        elif needs_base(ckpt):
            raise RunError(
                f"{self.resumed_from or 'checkpoint'}: holds LoRA adapters, but this config has no finetune.lora. "
                "Fix: use the config the run was trained with (its config.yaml), or leave --config out."
            )
        try:
            if self.lora is None:
                unwrap_model(self.model).load_state_dict(ckpt["model"])
        except RuntimeError as exc:
            raise RunError(
                f"{self.resumed_from or 'checkpoint'}: the checkpoint's weights do not fit the model of this "
                f"config ({str(exc).splitlines()[0]}). Fix: use the config the run was started with (its "
                "config.yaml), or leave --config out so the checkpoint's own config is used."
            ) from None
        if weights_only:
            return
        if ckpt.get("finetune"):
            # the frozen set and the lr groups decide the optimizer's groups: rebuild it on them
            self.finetuner.load_state_dict(ckpt["finetune"])
            self.optimizer = self.finetuner.build_optimizer()
        if ckpt.get("optimizer"):
            try:
                self.optimizer.load_state_dict(ckpt["optimizer"])
            except (ValueError, KeyError) as exc:
                raise RunError(
                    f"{self.resumed_from}: the optimizer state does not match this config's parameter groups "
                    f"({exc}). Fix: resume with the run's own config.yaml."
                ) from None
        assert self.schedule is not None and self.scaler is not None
        if ckpt.get("scheduler"):
            self.schedule.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(ckpt["scaler"])

        self.epoch = int(ckpt.get("epoch", 0))
        self.batches_done = int(ckpt.get("batch_idx", 0))
        self.global_step = int(ckpt.get("step", 0))
        saved_world = int(ckpt.get("world_size", 1))
        if saved_world != self.strategy.world_size:
            self._resume_other_world(saved_world)

        metrics = ckpt.get("metrics") or {}
        self.history = {k: list(v) for k, v in (metrics.get("history") or {}).items()}
        self.callback_metrics = dict(metrics.get("last") or {})
        self.nonfinite_skipped = int(metrics.get("nonfinite_skipped", 0))
        self.clock.seconds = float(metrics.get("train_seconds", 0.0))
        if self.resume_changes:
            self._take_resume_changes(ckpt)

        states = ckpt.get("callbacks") or {}
        for cb in self.callbacks:
            if cb.state_key in states:
                cb.load_state_dict(states[cb.state_key])
            cb.on_load_checkpoint(self, ckpt)
        self._pending_rng = ckpt.get("rng")

    def _take_resume_changes(self, ckpt: dict[str, Any]) -> None:
        """Say (console, event) what a resume changed; a new ``optim.lr``/``finetune.head_lr`` moves the
        groups still at the rate the run's config gave them (groups changed since keep theirs)."""
        from core.config import Config
        from core.finetune import FineTuner

        changes = self.resume_changes
        if {"optim.lr", "finetune.head_lr"} & set(changes):
            try:
                then = Config.model_validate(ckpt.get("config") or {})
            except ValueError:
                then = None
            if then is not None:
                head = self.built.head_path
                model = unwrap_model(self.model)
                before = FineTuner(model, then.finetune, then.optim, head).config_base_lrs()
                after = FineTuner(model, self.cfg.finetune, self.cfg.optim, head).config_base_lrs()
                self.finetuner.follow_config_lrs(before, after)
        shown = ", ".join(f"{key} {then_!r} -> {now!r}" for key, (then_, now) in changes.items())
        message = f"resumed with a changed config: {shown} (config.yaml says so from now on)"
        self.notices.append(message)
        self.log_event("config", message, changes={k: [a, b] for k, (a, b) in changes.items()})

    def _warn_if_code_changed(self, ckpt: dict[str, Any]) -> None:
        """Resume and evaluation go on with the code as it is now, but say which files changed since ``ckpt``."""
        from core.usercode import changed_code_files

        for path, (then, now) in changed_code_files(ckpt.get("code") or {}, self.code_record()).items():
            message = (f"code changed since the checkpoint was written: {path} (sha256 {then[:12]} then, "
                       f"{now[:12] if now else 'missing'} now); going on with the file as it is now")
            self.notices.append(message)
            self.log_event("warning", message, path=path, sha256_then=then, sha256_now=now)

    def _resume_other_world(self, saved_world: int) -> None:
        """Resume a checkpoint of another world size at the next epoch boundary.

        The shards (and the batches per epoch) depend on the world size, so the rest of a
        half-trained epoch cannot be found again; the optimizer step count is rescaled to whole
        epochs of this world size so that the lr schedule stays where the epochs say it is.
        """
        epoch, batch = self.epoch, self.batches_done
        if batch > 0:
            epoch += 1
        self.epoch, self.batches_done = epoch, 0
        self.epoch_closed = False
        old_step = self.global_step
        self.global_step = epoch * self.steps_per_epoch
        world = self.strategy.world_size
        self.log_event(
            "warning",
            f"resumed a {saved_world}-process checkpoint with {world} process(es): the data shards "
            f"differ, so training continues at the start of epoch {epoch + 1}"
            + (f" (the rest of epoch {epoch} is skipped)" if batch > 0 else "")
            + f"; step {old_step} becomes {self.global_step} in this world size's steps",
            saved_world_size=saved_world, world_size=world, skipped_batches=batch,
        )

    def _train(self) -> None:
        """The epochs, between the fit-level hooks; sets the final :attr:`status`."""
        self._call("setup", "fit")
        self.status = "running"
        self.fit_started_at = time.time()
        self._call("on_fit_start")
        self.strategy.announce(self)
        self._call("on_train_start")
        if self._pending_rng is not None:
            # last, so nothing done while starting (graph tracing, model tree) shifts the streams
            restore_rng(self._pending_rng)
            self._pending_rng = None
            self.strategy.seed_rank(self.cfg.run.seed, self.global_step)
        with _gc_frozen(), watch_nondeterminism(self._nondeterministic):
            self._fit_loop()
        self.strategy.finish(self)
        if self.signal_received is not None:
            self.status = "interrupted"
        elif self.should_stop:
            self.status = self.stop_status
        else:
            self.status = "finished"
        self._call("on_train_end")
        self._call("on_fit_end")

    def cleanup(self) -> None:
        """Release what the run holds: callbacks' resources (``teardown``), the data loaders' worker
        processes, the signal handlers and the run's open files. ``fit`` ends with it; safe to repeat.

        The loaders stay usable: iterating one again starts new workers.
        """
        self._restore_signal_handlers()
        self._call_safely("teardown", "fit")
        for loader in (self.train_loader, self.val_loader, self.test_loader):
            close = getattr(loader, "close", None)
            if close is not None:
                close()
        if self.run is not None:
            self.run.close()

    # -----------------------------------------------------------------------------------------
    # Evaluation
    # -----------------------------------------------------------------------------------------

    def validate(self, split: str = "val") -> dict[str, Any]:
        """Evaluate the current model on ``split`` ('val' or 'test'); returns every metric."""
        if not self._setup_done:
            self.setup(None)
        if split not in ("val", "test"):
            raise ConfigError(f"--split {split!r}: expected 'val' or 'test'.")
        loader = self.val_loader if split == "val" else self._get_test_loader()
        if split == "test":
            self._call("on_test_start")
            metrics = self._evaluate(loader, split, stoppable=False)
            self._call("on_test_end")
        else:
            metrics = self._evaluate(loader, split, stoppable=False)
        assert metrics is not None
        return metrics

    def test(self) -> dict[str, Any]:
        """Evaluate on the test split."""
        return self.validate("test")

    # -----------------------------------------------------------------------------------------
    # The public surface callbacks use (docs/architecture.md; tests/test_structure.py keeps them to it)
    # -----------------------------------------------------------------------------------------

    def request_stop(self, reason: str, *, status: str = "stopped") -> None:
        """Stop after the current step (``status`` becomes the run's final status unless a signal came)."""
        if not self.should_stop:
            self.stop_reason, self.stop_status = reason, status
        self.should_stop = True

    def save_checkpoint(self, path: Path | str, *, reason: str = "manual") -> Path:
        """Write a checkpoint of the current state atomically and record a ``checkpoint`` event.

        The one way a checkpoint is written (the checkpoint callback, the ``checkpoint`` control
        command, user code). ``reason`` goes into the event (``epoch``, ``step``, ``best``, ``keep``,
        ``control``, a final status...). Raises :class:`NonFiniteWeights` instead of writing a model
        whose weights are not all finite, so a diverged run never replaces a good file.
        """
        path = Path(path)
        if self.model is None:
            raise RuntimeError("save_checkpoint before setup: there is no model yet")
        if not all_finite(self.model):
            raise NonFiniteWeights(f"not writing {path.name}: the model has non-finite weights")
        ckpt = self.checkpoint_dict()
        self._call("on_save_checkpoint", ckpt)
        save_file(ckpt, path)
        epoch, batch = self.position
        self.log_event("checkpoint", f"saved {path.name}", path=str(path), file=path.name, reason=reason,
                       position={"epoch": epoch, "batch": batch})
        return path

    def code_record(self) -> dict[str, Any]:
        """What built the model and the data when not ftui's own (checkpoint["code"]): names, files, hashes."""
        out: dict[str, Any] = {}
        if self.built is not None and self.built.code is not None:
            out["model"] = self.built.code
        if self.data is not None and self.data.code:
            out.update(self.data.code)
        return out

    def checkpoint_dict(self) -> dict[str, Any]:
        """Everything a checkpoint holds (docs/run-format.md, "checkpoints/"), as weights_only-loadable values."""
        epoch, batch = self.position
        assert self.model is not None and self.optimizer is not None
        return {
            "format": CHECKPOINT_FORMAT,
            "ftui_version": __version__,
            "model": self._model_state(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.schedule.state_dict() if self.schedule else {},
            "scaler": self.scaler.state_dict() if self.scaler is not None and self.scaler.is_enabled() else {},
            "epoch": epoch,
            "batch_idx": batch,
            "step": self.global_step,
            "world_size": self.strategy.world_size,
            "rng": capture_rng(),
            "config": self.cfg.model_dump(mode="json"),
            "data": self.data.checkpoint_data() if self.data is not None else {},
            "finetune": self.finetuner.state_dict() if self.finetuner is not None else {},
            "metrics": {
                "history": self.history,
                "best": self.best,
                "last": {k: v for k, v in self.callback_metrics.items() if math.isfinite(v)},
                "nonfinite_skipped": self.nonfinite_skipped + self._window.pending_nonfinite(),
                "train_seconds": self.train_seconds,
            },
            "model_tree": self.model_tree or {},
            "code": self.code_record(),
            "callbacks": {cb.state_key: cb.state_dict() for cb in self.callbacks},
            "run": {"name": self.run.name if self.run else None, "saved": time.time()},
            **({"compression": self.built.compression} if self.built is not None and self.built.compression else {}),
            **({"lora": self.lora.record(self.finetuner.touched)} if self.lora is not None else {}),
        }

    def _model_state(self) -> dict[str, Any]:
        """``checkpoint["model"]``: the state dict, without a LoRA base's parameters that are still the file's."""
        if self.lora is not None:
            return self.lora.state_dict(self.finetuner.touched)
        return unwrap_model(self.model).state_dict()

    def record_evaluation(self, split: str, metrics: dict[str, Any]) -> None:
        """Make an evaluation's ``metrics`` (from :meth:`validate`) the run's latest for ``split``.

        Updates ``callback_metrics``, ``last_eval`` and ``history``, and emits ``on_log`` (so the
        recorder writes the row). The loop calls it after each validation; a callback that
        validates on its own (the ``validate`` control command) calls it too.
        """
        scalars = scalar_metrics(metrics)
        self.last_eval[split] = metrics
        for key, value in scalars.items():
            self.callback_metrics[f"{split}/{key}"] = value
        for key in ("loss", "acc", "f1_macro"):
            if key in scalars:
                self.history.setdefault(f"{split}/{key}", []).append(scalars[key])
        if "train/loss" in self.callback_metrics:
            self.history.setdefault("train/loss", []).append(self.callback_metrics["train/loss"])
        self._call("on_log", split, metrics)

    def finetune_changed(self, event: dict[str, Any] | None = None) -> None:
        """Apply a change made through :attr:`finetuner` (freeze, unfreeze, set_lr) to the run.

        ``event`` describes a freeze or unfreeze (``kind``, ``message``, fields) and is logged; a
        change of learning rates is recorded by the ``LearningRateMonitor`` (the one writer of ``lr``
        events). Then the model is re-wrapped for DDP if the trainable set changed, and the layer tree
        (``model.json``) rewritten — before a control command is answered, so a client that sees the
        answer finds the new tree.
        """
        if event is not None:
            kind = str(event.get("kind", "finetune"))
            fields = {k: v for k, v in event.items() if k not in ("kind", "message")}
            message = str(event.get("message") or f"{kind}: {', '.join(map(str, event.get('modules', [])))}")
            self.log_event(kind, message, **fields)
        self.strategy.rewrap_if_trainable_changed(self)
        self.refresh_model_tree()
        if self.run is not None and self.model_tree is not None:
            self.run.write_json(MODEL_JSON, self.model_tree)

    def refresh_model_tree(self) -> None:
        """Recompute the layer tree (after freeze/unfreeze) so model.json and checkpoints stay current."""
        from core.models import model_tree

        try:
            tuner = self.finetuner
            self.model_tree = model_tree(
                unwrap_model(self.model), self.data.input_shape, self.built.head_path,
                lrs=tuner.param_lrs() if tuner is not None else None,
                groups=tuner.param_groups() if tuner is not None else None,
                name=self.built.name, example=self.example_input,
            )
        except Exception as exc:  # noqa: BLE001 - the tree is informative; training must not fail on it
            self.log_event("warning", f"could not compute the layer tree: {exc}")
            self.model_tree = None

    def exclude_time(self, seconds: float) -> None:
        """Leave ``seconds`` that just passed out of the training clock and the throughput window.

        For a callback that held the loop (a ``pause``): ``train_seconds``, ``trainer.max_time`` and
        ``samples_per_s`` are about training only. Time outside an epoch's training (validation, an
        epoch boundary) is not counted anyway.
        """
        if self.clock.running:
            self.clock.exclude(seconds)
            self._window_host.exclude(seconds)

    def agree_step(self) -> None:
        """Agree with every rank on signals, stop requests, ``max_time`` and control polls.

        One tiny all-reduce under DDP (every rank calls it at the same point): a signal or stop
        request seen on any rank stops all of them after the same optimizer step; rank 0's clock
        decides ``max_time`` and when the control channel is read next (:attr:`poll_now`). In one
        process it only checks ``max_time``.
        """
        main = self.strategy.is_main
        local = [0, 0, 0, 0]
        local[distributed.FLAG_SIGNAL] = self._pending_signal or 0
        if self.should_stop and self.signal_received is None:
            local[distributed.FLAG_STOP] = distributed.STOP_CODES.get(self.stop_status, 1)
        local[distributed.FLAG_POLL] = int(main and self.strategy.distributed and self._poll_due())
        local[distributed.FLAG_TIME] = int(main and self._max_time_reached())
        flags = self.strategy.reduce_flags(local)
        self.poll_now = bool(flags[distributed.FLAG_POLL])
        if flags[distributed.FLAG_SIGNAL] and self.signal_received is None:
            self._take_signal(flags[distributed.FLAG_SIGNAL])
        if flags[distributed.FLAG_STOP] and not self.should_stop:
            status = distributed.STOP_STATUS.get(flags[distributed.FLAG_STOP], "stopped")
            self.request_stop("stop requested on another rank", status=status)
        if flags[distributed.FLAG_TIME] and not self.should_stop:
            self.request_stop(f"reached max_time={self.cfg.trainer.max_time:g}s", status="finished")

    def log_event(self, kind: str, message: str = "", **fields: Any) -> None:
        """Record an event in the run directory (no-op without one)."""
        if self.run is not None:
            self.run.log_event(kind, message, **{"epoch": self.epoch, "step": self.global_step, **fields})

    @property
    def exit_code(self) -> int:
        """What ``ftui run`` exits with: 0, 1, 130 (SIGINT) or 143 (SIGTERM)."""
        return RunStatus.exit_code_of(self.status, self.signal_received)

    @property
    def position(self) -> tuple[int, int]:
        """(completed epochs, batches done in the next epoch to train): where a resume starts."""
        if self.epoch_closed:
            return self.epoch + 1, 0
        return self.epoch, self.batches_done

    @property
    def precision(self) -> str:
        """``trainer.precision`` as this run computes: ``32``, ``bf16-mixed`` or ``16-mixed`` (``auto`` resolved)."""
        if self.runtime is not None:
            return self.runtime.precision
        return resolve_precision(self.cfg.trainer.precision, self.device)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def train_seconds(self) -> float:
        """Seconds spent training epochs (validation and pauses excluded), up to the last epoch end."""
        return self.clock.seconds

    @property
    def checkpoint_callback(self) -> Any:
        """The first :class:`CheckpointCallback` among the callbacks, or None (as in Lightning)."""
        from core.training.callbacks.checkpointing import CheckpointCallback

        return next((cb for cb in self.callbacks if isinstance(cb, CheckpointCallback)), None)

    @property
    def best(self) -> dict[str, Any] | None:
        """The best monitored metric so far, as the checkpoint callback keeps it (None without one):
        ``{"metric", "value", "epoch", "step", "mode", "checkpoint"}``."""
        cb = self.checkpoint_callback
        return cb.best if cb is not None else None

    @property
    def world_size(self) -> int:
        """Processes training this run (1 without torchrun)."""
        return self.strategy.world_size

    @property
    def global_rank(self) -> int:
        """This process's rank (0 without torchrun)."""
        return self.strategy.rank

    @property
    def is_global_zero(self) -> bool:
        """Rank 0: the process that writes the run directory."""
        return self.strategy.is_main

    # -----------------------------------------------------------------------------------------
    # The loop
    # -----------------------------------------------------------------------------------------

    def _fit_loop(self) -> None:
        cfg = self.cfg.trainer
        start_epoch, start_batch = self.epoch, self.batches_done
        for epoch in range(start_epoch, cfg.epochs):
            self.epoch = epoch
            self.epoch_closed = False
            resuming_mid_epoch = epoch == start_epoch and start_batch > 0
            self.batches_done = start_batch if epoch == start_epoch else 0
            if not resuming_mid_epoch:
                # the unfreeze schedule ran before a mid-epoch checkpoint was written
                for event in self.finetuner.on_epoch_start(epoch) or []:
                    self.finetune_changed(event)
            self._call("on_train_epoch_start")
            self._train_epoch()
            if self.signal_received is not None or (self.should_stop and self.stop_status != "finished"):
                break  # hard stop: no validation, last.pt records the position
            if self._validation_due():
                self._call("on_validation_start")
                self._call("on_validation_epoch_start")
                metrics = self._evaluate(self.val_loader, "val", stoppable=True)
                if metrics is None:  # interrupted during validation
                    break
                self.record_evaluation("val", metrics)
                if self.schedule is not None:
                    self.schedule.observe(self.callback_metrics)  # a plateau: the lr monitor records it
                self.epoch_closed = self.batches_done >= len(self.train_loader)
                self._call("on_validation_epoch_end")
                self._call("on_validation_end")
            else:
                self.epoch_closed = self.batches_done >= len(self.train_loader)
            self._call("on_train_epoch_end")
            if self.should_stop:
                break
        else:
            self.epoch = max(self.epoch, cfg.epochs - 1)

    def _validation_due(self) -> bool:
        cfg = self.cfg.trainer
        last_epoch = self.epoch == cfg.epochs - 1 or self.should_stop
        return (self.epoch + 1) % cfg.val_every_n_epochs == 0 or last_epoch

    def _train_epoch(self) -> None:
        cfg = self.cfg.trainer
        loader = self.train_loader
        n_batches = len(loader)
        start = self.batches_done
        if start >= n_batches or self.should_stop:
            return  # a stop or signal in on_train_epoch_start (e.g. while paused there) trains no batch
        model, optimizer, criterion = self.train_model, self.optimizer, self.criterion
        assert model is not None and optimizer is not None and self.scaler is not None and criterion is not None
        model.train()
        self.finetuner.apply_bn_policy()
        loader.set_epoch(self.epoch)
        loader.set_start_batch(start)
        with torch.random.fork_rng(devices=[]):
            # DataLoader draws its base seed from the global RNG; keep the streams independent of it
            iterator = iter(loader)
        accum = cfg.accumulate_grad_batches
        every = self.cfg.logging.every_n_steps
        # skip mode: a bad batch leaves no trace, decided at the optimizer step without a per-batch sync
        skip = self._skip_guard = NonFiniteSkip(self.model) if cfg.on_nonfinite == "skip" else None
        strategy, window, window_host = self.strategy, self._window, self._window_host
        window.reset()
        window_host.reset()
        self.clock.start()
        try:
            for batch_idx in range(start, n_batches):
                wait0 = time.perf_counter()
                try:
                    batch = next(iterator)
                except StopIteration:
                    break
                window_host.wait += time.perf_counter() - wait0
                self.batch_idx = batch_idx
                self._call("on_train_batch_start", batch, batch_idx)
                x, y = self._to_device(batch)
                is_step = (batch_idx + 1) % accum == 0 or batch_idx + 1 == n_batches
                kept = skip.keep() if skip is not None else None
                with strategy.no_sync(is_step):
                    with autocast(self.device, self.precision):
                        # self.train_model, not a local: a freeze mid-epoch re-wraps it under DDP
                        logits = call_model(self.train_model, x)
                loss = criterion(logits.float(), y)
                step = self.global_step
                to_backward, ok = loss / accum if accum > 1 else loss, None
                if skip is not None:
                    # a non-finite loss poisons its gradients; the step is skipped on every rank (nonfinite.py).
                    # Otherwise non-finite losses are found at the next read-out, without a per-step sync.
                    to_backward, ok = skip.guard(loss, to_backward)
                self._call("on_before_backward", loss)
                with strategy.no_sync(is_step):
                    self.scaler.scale(to_backward).backward()
                if skip is not None:
                    skip.restore(ok, kept)
                self._call("on_after_backward")
                if is_step:
                    self._optimizer_step()
                window.update(loss, logits.detach(), y, step)
                window_host.samples += int(y.shape[0])
                self.batches_done = batch_idx + 1
                self._call("on_train_batch_end", {"loss": loss.detach()}, batch, batch_idx)
                if is_step:
                    if self.global_step % every == 0:
                        self._read_out_train()
                    if self._check_limits():
                        break
        finally:
            self.clock.stop()
        self._read_out_train()

    def _optimizer_step(self) -> None:
        cfg = self.cfg.trainer
        optimizer = self.optimizer
        assert optimizer is not None and self.scaler is not None and self.schedule is not None
        apply_lr(optimizer, self.schedule.factor(self.global_step))
        checked = cfg.gradient_clip_val is not None or self._skip_guard is not None
        params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None] if checked else []
        norm = None
        if cfg.gradient_clip_val is not None:
            self.scaler.unscale_(optimizer)
            norm = torch.nn.utils.clip_grad_norm_(params, cfg.gradient_clip_val)
        self._call("on_before_optimizer_step", optimizer)
        # skip mode: GradScaler skips a step with non-finite gradients by itself; without it, one read
        if self._skip_guard is None or self.scaler.is_enabled() or gradients_finite(params, norm):
            self.scaler.step(optimizer)
        self.scaler.update()
        self._call("on_before_zero_grad", optimizer)
        optimizer.zero_grad(set_to_none=True)
        self.global_step += 1

    def _check_limits(self) -> bool:
        """After an optimizer step: whether to stop now (max_steps, max_time, a stop agreed by the ranks)."""
        max_steps = self.cfg.trainer.max_steps
        if not self.should_stop and max_steps is not None and self.global_step >= max_steps:
            self.request_stop(f"reached max_steps={max_steps}", status="finished")
        self.agree_step()
        return self.should_stop

    def _max_time_reached(self) -> bool:
        max_time = self.cfg.trainer.max_time
        return max_time is not None and self.clock.total() >= max_time

    def _poll_due(self) -> bool:
        """Rank 0: whether a callback offering ``poll_due(trainer)`` (the control channel) wants a poll."""
        return any(cb.poll_due(self) for cb in self.callbacks if hasattr(cb, "poll_due"))

    def _read_out_train(self) -> None:
        """Read the device accumulators (one sync), check for non-finite losses, emit ``on_log``."""
        # the logged window covers every rank's samples; a non-finite loss anywhere fails all ranks
        all_ranks = self.strategy.reduces_train_window
        window = self._window.read(all_ranks=all_ranks)
        self._window.reset()  # read once: a window of skipped batches only logs no row, and is not read again
        if window.nonfinite and self.cfg.trainer.on_nonfinite == "fail":
            step = window.first_nonfinite_step if window.first_nonfinite_step is not None else self.global_step
            raise TrainingFailed(
                f"non-finite loss (NaN or inf) at step {step + 1}, epoch {self.epoch + 1}: training diverged. "
                f"Fix: lower optim.lr (now {self.cfg.optim.lr:g}), set trainer.gradient_clip_val, or use "
                "trainer.on_nonfinite: skip to skip such batches. The last good checkpoint is kept."
            )
        if self.cfg.trainer.on_nonfinite == "skip" and not all_finite(self.model):
            # skipping a batch protects the weights from one bad loss; once they are NaN every loss is,
            # and a run that skipped every batch since would end "finished" with garbage weights
            raise TrainingFailed(
                f"the weights became non-finite (NaN or inf) by step {self.global_step}, epoch {self.epoch + 1}: "
                "training diverged, and skipping batches (trainer.on_nonfinite: skip) cannot bring it back. Fix: lower "
                f"optim.lr (now {self.cfg.optim.lr:g}) or set trainer.gradient_clip_val. Checkpoints written before "
                "are kept."
            )
        if self.cfg.trainer.on_nonfinite == "skip":
            self.nonfinite_skipped += window.nonfinite
        loss, acc, count = window.loss, window.acc, window.count
        window_host = self._window_host
        elapsed = window_host.elapsed()
        if count == 0:
            return
        if all_ranks:
            window_host.samples = count  # all ranks' samples: the job's throughput
        assert self.optimizer is not None
        lrs = {str(g.get("name", i)): float(g["lr"]) for i, g in enumerate(self.optimizer.param_groups)}
        row = {
            "loss": loss,
            "acc": acc,
            "lr": max(lrs.values()) if lrs else 0.0,
            "samples_per_s": window_host.samples / elapsed,
            "data_wait": min(1.0, window_host.wait / elapsed),
        }
        if self.nonfinite_skipped:
            row["nonfinite_skipped"] = self.nonfinite_skipped
        self.callback_metrics.update({"train/loss": loss, "train/acc": acc, "lr": row["lr"]})
        self._call("on_log", "train", {**row, "lrs": lrs})
        window_host.reset()

    def _to_device(self, batch: Any) -> tuple[Any, torch.Tensor]:
        """The batch's inputs (a tensor, or a tuple or dict of tensors) and labels, on the device."""
        x, y = batch[0], batch[1]
        x = to_device(x, self.device)
        y = y.to(self.device, non_blocking=True)
        if self.runtime is not None and self.runtime.channels_last and isinstance(x, torch.Tensor) and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y

    def _evaluate(self, loader: Iterable[Any], split: str, *, stoppable: bool) -> dict[str, Any] | None:
        """One pass over ``loader``; None when a signal arrived during it (``stoppable``).

        Distributed: each rank evaluates its (unpadded) shard with rank 0's buffers, and the counts
        and the confusion matrix are summed over the ranks, so the figures are those of one process.
        """
        model = self.eval_model
        assert model is not None and self.model is not None
        self.strategy.before_evaluation(self.model)
        was_training = model.training
        model.eval()
        metrics = ClassificationMetrics(len(self.class_names), self.device)
        with torch.random.fork_rng(devices=[]):
            iterator = iter(loader)
        try:
            with torch.no_grad():
                for i, batch in enumerate(iterator):
                    x, y = self._to_device(batch)
                    with autocast(self.device, self.precision):
                        logits = call_model(model, x)
                    logits = logits.float()
                    metrics.update(logits, y, F.cross_entropy(logits, y, reduction="sum"))
                    if split == "val":
                        self._call("on_validation_batch_end", {"logits": logits}, batch, i)
                    if stoppable and self.signal_received is not None:
                        return None
        finally:
            model.train(was_training)
        self.strategy.reduce_metrics(metrics)
        return metrics.compute()

    def _get_test_loader(self) -> Any:
        from core.data import build_loader

        if self.data.test is None or len(self.data.test) == 0:
            source = self.data.info.get("source", self.cfg.data.source)
            fix = (f"return a 'test' split from {source}" if self.data.code else
                   "give it a test split (data.test_fraction, or data.shapes.test_size for shapes)")
            raise UserError(
                f"data: the {source} source of this config has no test split. Fix: evaluate with --split val, "
                f"or {fix}."
            )
        if self.test_loader is None:
            # sharded like validation: _evaluate sums the ranks' counts, so each sample must be on one rank
            self.test_loader = build_loader(
                self.data.test, self.cfg.data, split="test", seed=self.cfg.run.seed, rank=self.strategy.rank,
                world_size=self.strategy.world_size, device=self.device,
                channels_last=self.runtime is not None and self.runtime.channels_last,
            )
        return self.test_loader

    # -----------------------------------------------------------------------------------------
    # The run directory
    # -----------------------------------------------------------------------------------------

    def _open_run(self, *, resume: bool) -> None:
        """Rank 0 with ``record``: continue ``run_dir`` (the launcher's, or the one resumed) or create one."""
        if not self.record or not self.strategy.is_main:
            return
        flush = self.cfg.logging.flush_seconds
        if self.run_dir is None:
            self.run = RunWriter.create(self.cfg.run.root, self.cfg.run.name or "run", flush)
            self.run.lock()
            return
        info_path = self.run_dir / RUN_JSON
        if not info_path.is_file():
            raise RunError(f"{self.run_dir}: not a run directory (no {RUN_JSON}). Fix: pass a directory under runs/.")
        writer = RunWriter.reopen(self.run_dir, flush)
        writer.lock()  # before anything is written: a second process is refused with the first's pid
        if not resume and writer.info.get("status") != "created":
            writer.close()
            raise RunError(
                f"{self.run_dir}: this run already ran (status {writer.info.get('status')}); a run directory is "
                f"never overwritten. Fix: resume it with --resume {self.run_dir}, or start a new run."
            )
        self.run = writer

    # -----------------------------------------------------------------------------------------
    # Failures and signals
    # -----------------------------------------------------------------------------------------

    def _as_failure(self, exc: BaseException) -> BaseException:
        if isinstance(exc, FtuiError):
            return exc
        refusal = self._deterministic_refusal(exc)
        if refusal is not None:
            return refusal
        if isinstance(exc, torch.OutOfMemoryError):
            bs = self.cfg.data.batch_size
            return TrainingFailed(
                f"out of memory on {self.device} with data.batch_size={bs}. Fix: lower data.batch_size (e.g. "
                f"--set data.batch_size={max(1, bs // 2)}) and raise trainer.accumulate_grad_batches to keep the "
                "effective batch, or use trainer.precision: bf16-mixed, or a smaller data.image_size."
            )
        full = _disk_full(exc, self.run.path if self.run is not None else self.run_dir)
        if full is not None:
            return TrainingFailed(full)
        tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
        failure = TrainingFailed(f"training failed: {type(exc).__name__}: {exc}")
        failure.traceback = "".join(tb)  # type: ignore[attr-defined]
        return failure

    def _deterministic_refusal(self, exc: BaseException | None) -> ConfigError | None:
        """The message for torch refusing an operation under ``trainer.deterministic: true``, or None."""
        op = nondeterministic_op(exc) if exc is not None else None
        if op is None or self.cfg.trainer.deterministic is not True:
            return None
        return ConfigError(
            f"trainer.deterministic: true, but this run uses {op}, which has no deterministic implementation on "
            f"{self.device.type}. Fix: set trainer.deterministic: warn (the run goes on and records each such "
            "operation) or false, or change the model so that it does not use it."
        )

    def _nondeterministic(self, op: str) -> None:
        """``deterministic: warn``: record each operation that keeps this run from repeating exactly (once)."""
        if op in self.nondeterministic_ops:
            return
        self.nondeterministic_ops.append(op)
        self.log_event("warning", f"trainer.deterministic: warn, but {op} has no deterministic implementation on "
                       f"{self.device.type}: this run does not repeat exactly", op=op)
        if self.run is not None:
            self.run.update(nondeterministic_ops=list(self.nondeterministic_ops))

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old_handlers[sig] = signal.getsignal(sig)
            signal.signal(sig, self._on_signal)

    def _restore_signal_handlers(self) -> None:
        for sig, handler in self._old_handlers.items():
            try:
                signal.signal(sig, handler)
            except (ValueError, TypeError):
                pass
        self._old_handlers.clear()

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._pending_signal is not None:
            raise KeyboardInterrupt  # the second signal: leave at once
        self._pending_signal = signum
        if not self.strategy.distributed:
            self._take_signal(signum)  # one process: nobody to agree with
        # distributed: recorded only; the ranks agree on it at the next step boundary (agree_step)

    def _take_signal(self, signum: int) -> None:
        self.signal_received = signum
        self.should_stop = False  # the signal's reason and status win over a plain stop
        self.request_stop(f"received {signal.Signals(signum).name}", status="interrupted")

    # -----------------------------------------------------------------------------------------
    # Hooks
    # -----------------------------------------------------------------------------------------

    def _call(self, hook: str, *args: Any) -> None:
        for method in self._hook_methods(hook):
            method(self, *args)

    def _hook_methods(self, hook: str) -> list[Any]:
        """The callbacks' own implementations of ``hook``, in order (the base class's no-ops left out).

        Per step the loop calls eight hooks on a dozen callbacks, and most are no-ops: looking them
        up once keeps the dispatch off the per-step cost. The table is rebuilt when ``callbacks``
        is a different list or changed length (callbacks are meant to be fixed once ``fit`` starts).
        """
        key = (id(self.callbacks), len(self.callbacks))
        if self._hook_key != key:
            self._hook_key, self._hook_table = key, {}
        methods = self._hook_table.get(hook)
        if methods is None:
            base = getattr(Callback, hook, None)
            methods = [getattr(cb, hook) for cb in self.callbacks
                       if base is None or hook in getattr(cb, "__dict__", {}) or getattr(type(cb), hook, None) is not base]
            self._hook_table[hook] = methods
        return methods

    def _call_safely(self, hook: str, *args: Any) -> None:
        """Call a hook on every callback even if some fail (used while failing or tearing down)."""
        for cb in self.callbacks:
            try:
                getattr(cb, hook)(self, *args)
            except Exception as exc:  # noqa: BLE001 - one broken callback must not hide the real error
                if self.run is not None:
                    try:
                        self.run.log_event("warning", f"{type(cb).__name__}.{hook} failed: {exc}")
                    except Exception:  # noqa: BLE001
                        pass


def _disk_full(exc: BaseException, run_dir: Path | None) -> str | None:
    """The message for a failure caused by a full disk (its own errno, or torch's writer failing with
    little space left), or None."""
    import shutil

    full = isinstance(exc, OSError) and exc.errno in DISK_FULL
    writer_failed = isinstance(exc, RuntimeError) and ("unexpected pos" in str(exc) or "write" in str(exc))
    if not full and writer_failed and run_dir is not None:
        try:  # torch's zip writer reports a short write as "unexpected pos" or "file write failed"
            full = shutil.disk_usage(run_dir).free < 16 << 20
        except OSError:
            full = False
    if not full:
        return None
    where = f"the disk of {run_dir}" if run_dir is not None else "the disk"
    return (
        f"no space left on {where} ({type(exc).__name__}: {str(exc)[:120]}). Checkpoints written before are kept. "
        "Fix: free space (old runs, checkpoints/epoch-*.pt) or set run.root on a larger disk, then resume the run "
        "with --resume."
    )


@contextmanager
def _gc_frozen() -> Iterator[None]:
    """Everything built so far lives for the whole run. Frozen, it is no longer walked by each full
    collection, which the data pipeline's allocations trigger often: 7-10 % of a quickstart epoch on
    a small CPU (docs/benchmarks.md, benchmark 1)."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
