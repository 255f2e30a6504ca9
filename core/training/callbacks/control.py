"""The trainer's side of the control channel: apply commands from ``control/`` between optimizer steps.

Clients (``ftui ctl``, the app's layer tree) drop one JSON file per command into the run's
``control/`` directory (see :mod:`core.control`). This callback lists that directory at most every
:attr:`ControlCallback.poll_seconds` at step boundaries — after a real optimizer step, never between
backward and step — and at epoch boundaries, applies each command, answers it in ``events.jsonl``
(flushed at once, so a waiting client sees the answer right away) and moves the file to
``control/done/``. A bad command is answered ``error`` and training goes on.

``pause`` blocks the loop at the step boundary while still serving commands (``resume``, ``stop``,
``checkpoint``, ``freeze``...) and signals; ``run.json`` shows ``"paused": true`` meanwhile.

Under torch.distributed only rank 0 reads ``control/``. The ranks agree at every optimizer step
(the trainer's one flag all-reduce) whether rank 0's poll interval has passed; if so, at the next step
boundary rank 0 broadcasts the commands it found and every rank applies them, so all ranks freeze,
change an lr or stop at the same step. Polls at epoch starts and before validation are broadcast
unconditionally (every rank reaches them). While paused, rank 0 broadcasts every ``poll_seconds``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from core import control
from core.errors import UserError
from core.runs import CHECKPOINT_DIR, CONTROL_DIR
from core.training.callback import Callback
from core.training.checkpoint import NonFiniteWeights

if TYPE_CHECKING:  # pragma: no cover
    from core.training.trainer import Trainer

#: A command file that does not parse yet may still be being written by a non-atomic client.
UNREADABLE_GRACE_S = 1.0


class CommandRefused(Exception):
    """A command that cannot be applied; its message is the answer, ``fields`` go with it."""

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.fields = fields


class ControlCallback(Callback):
    """Serves the run directory's ``control/`` commands (needs ``trainer.run``).

    Args:
        poll_seconds: the least time between two listings of ``control/`` while training.
    """

    def __init__(self, poll_seconds: float = 0.1) -> None:
        self.poll_seconds = poll_seconds
        self.paused = False
        self._run_dir: Path | None = None
        self._last_poll = float("-inf")
        self._last_look = float("-inf")  # rank 0 under DDP: when control/ was last looked at
        self._seen_step: int | None = None
        self._distributed = False
        self._main = True
        self._handlers: dict[str, Callable[[Trainer, dict[str, Any]], str]] = {
            "freeze": self._freeze,
            "unfreeze": self._unfreeze,
            "set-lr": self._set_lr,
            "pause": self._pause,
            "resume": self._resume,
            "stop": self._stop,
            "prune": self._prune,
            "checkpoint": self._checkpoint,
            "validate": self._validate,
        }

    # -- hooks ----------------------------------------------------------------------------------

    def setup(self, trainer: Trainer, stage: str) -> None:
        self._distributed = trainer.strategy.distributed
        self._main = trainer.is_global_zero
        if trainer.run is not None:
            self._run_dir = trainer.run.path
            (self._run_dir / CONTROL_DIR).mkdir(exist_ok=True)

    def on_fit_start(self, trainer: Trainer) -> None:
        # A run resumed after it was killed while paused must not read as paused.
        if trainer.run is not None and trainer.run.info.get("paused"):
            trainer.run.update(paused=False, paused_since=None)
        self._seen_step = trainer.global_step
        if trainer.resumed_from is not None:
            self._set_aside_stale(trainer)

    def on_train_epoch_start(self, trainer: Trainer) -> None:
        self.poll(trainer, force=True)

    def on_train_batch_end(self, trainer: Trainer, outputs: Any, batch: Any, batch_idx: int) -> None:
        # Only after a real optimizer step: with gradient accumulation, gradients of the batches
        # seen so far are waiting for the step, and a freeze now would drop them half-applied.
        if trainer.global_step == self._seen_step:
            return
        self._seen_step = trainer.global_step
        if self._distributed:
            if trainer.poll_now:  # agreed by all ranks at the previous step boundary
                self.poll(trainer, force=True)
            return
        self.poll(trainer)

    def poll_due(self, trainer: Trainer) -> bool:
        """Rank 0: whether ``control/`` holds command files, looked at most every ``poll_seconds``.

        The trainer shares the answer with the other ranks at the next step boundary, which then
        poll together (a broadcast): only when there is something to read, not every ``poll_seconds``.
        """
        if self._run_dir is None:
            return False
        now = time.monotonic()
        if now - self._last_look < self.poll_seconds:
            return False
        self._last_look = now
        return control.has_waiting(self._run_dir)

    def on_validation_start(self, trainer: Trainer) -> None:
        # the epoch's training is done: a command sent now need not wait for validation
        self.poll(trainer, force=True)

    def on_fit_end(self, trainer: Trainer) -> None:
        self._answer_leftovers(trainer, f"the run ended ({trainer.status}) before applying it")

    def on_exception(self, trainer: Trainer, exception: BaseException) -> None:
        if self.paused and trainer.run is not None:
            self.paused = False
            trainer.run.update(paused=False, paused_since=None)
        self._answer_leftovers(trainer, f"the run ended ({trainer.status}) before applying it")

    # -- polling --------------------------------------------------------------------------------

    def poll(self, trainer: Trainer, *, force: bool = False) -> int:
        """Apply the waiting commands (at most one listing per ``poll_seconds`` unless ``force``);
        blocks here while paused. Returns how many commands were handled.

        Distributed, every rank must call this at the same point with ``force``: it is a collective.
        """
        if self._distributed:
            if not force:
                return 0
            self._last_poll = time.monotonic()
            handled = self._handle_pending(trainer)
            if self.paused:
                handled += self._wait_while_paused(trainer)
            return handled
        if self._run_dir is None:
            return 0
        now = time.monotonic()
        if not force and now - self._last_poll < self.poll_seconds:
            return 0
        self._last_poll = now
        handled = self._handle_pending(trainer)
        if self.paused:
            handled += self._wait_while_paused(trainer)
        return handled

    def _handle_pending(self, trainer: Trainer) -> int:
        commands: list[tuple[str, Any, str | None]] = []
        if self._run_dir is not None:
            for item in control.waiting(self._run_dir):
                if item.problem is not None and not item.final and _younger_than(item.path, UNREADABLE_GRACE_S):
                    continue  # maybe still being written; look again next time
                commands.append((str(item.path), item.obj, item.problem))
        if self._distributed:
            commands = trainer.strategy.broadcast(commands if self._main else None) or []
        for path, obj, problem in commands:
            self.handle(trainer, Path(path), obj, problem=problem)
        return len(commands)

    def _wait_while_paused(self, trainer: Trainer) -> int:
        """Block until resumed, stopped or signalled, serving commands every ``poll_seconds``."""
        paused_at = time.perf_counter()
        handled = 0
        try:
            while self.paused and not trainer.should_stop and trainer.signal_received is None:
                if self._main:
                    time.sleep(self.poll_seconds)  # a signal interrupts the sleep; its handler sets the flags
                handled += self._handle_pending(trainer)
                if self._distributed:
                    trainer.agree_step()  # the other ranks wait in the broadcast; agree on signals and stops
        finally:
            # a pause is not training time: keep max_time and samples/s about the training only
            trainer.exclude_time(time.perf_counter() - paused_at)
            if self.paused:  # left by a stop or a signal
                self.paused = False
                self._mark_paused(trainer, False)
        return handled

    # -- one command ----------------------------------------------------------------------------

    def handle(
        self, trainer: Trainer, path: Path, obj: dict[str, Any] | None, *, problem: str | None = None
    ) -> dict[str, Any]:
        """Apply one command file, answer it in events.jsonl and move it to ``control/done/``.

        A file that is not a readable command (``problem``, or not an object) is answered ``error``
        and moved to ``control/rejected/``; nothing in a file can end the run, and the answer copies
        at most :data:`core.control.MAX_ANSWER_CHARS` of what the file said.
        """
        command_id, name, args = _identity(path, obj)
        answer: dict[str, Any] = {"id": command_id, "command": name or None, "args": args}
        rejected = obj is None or problem is not None
        try:
            if rejected:
                why = problem or "is not a JSON command object"
                raise CommandRefused(f"{path.name} {why}; it was moved to control/rejected/. Send commands with "
                                     "`ftui ctl`.")
            if not isinstance(args, dict):
                raise CommandRefused(f"'args' must be an object, got {type(args).__name__}.")
            args = control.validate_command(name, args)
            answer["args"] = args
            message = self._handlers[name](trainer, {**args, "_id": command_id})
            answer.update(status="ok", message=message)
        except CommandRefused as exc:
            answer.update(status="error", message=str(exc), **exc.fields)
        except UserError as exc:
            answer.update(status="error", message=str(exc))
        except Exception as exc:  # noqa: BLE001 - a failing command is answered; training goes on
            answer.update(status="error", message=f"{name} failed: {type(exc).__name__}: {exc}")
        if self._main:
            (control.set_aside if rejected else control.mark_done)(path)
        answer["args"] = control.bounded(answer["args"])
        trainer.log_event("control", control.clip(str(answer.pop("message"))), **answer)
        if trainer.run is not None:
            trainer.run.flush()  # the client is waiting for this line
        return answer

    def _answer_leftovers(self, trainer: Trainer, reason: str) -> None:
        if self._run_dir is None or trainer.run is None:
            return
        for item in control.waiting(self._run_dir):
            command_id, name, _ = _identity(item.path, item.obj)
            (control.mark_done if item.problem is None else control.set_aside)(item.path)
            trainer.log_event("control", reason, id=command_id, command=name or None, status="error")
        trainer.run.flush()

    def _set_aside_stale(self, trainer: Trainer) -> None:
        """Resuming: commands written before this process took the run over were meant for the process
        that ended. Applying them now (a `stop` sent after a crash) would surprise; each is answered
        ``error`` ("set aside") and moved to ``control/done/``."""
        if self._run_dir is None or trainer.run is None or not self._main:
            return
        since = trainer.run.opened
        for item in control.waiting(self._run_dir):
            try:
                written = item.path.stat().st_mtime
            except OSError:
                continue
            if written >= since:
                continue
            command_id, name, _ = _identity(item.path, item.obj)
            when = time.strftime("%H:%M:%S", time.localtime(written))
            (control.mark_done if item.problem is None else control.set_aside)(item.path)
            trainer.log_event(
                "control",
                f"set aside, not applied: sent at {when}, before this resume took the run over; it was meant for the "
                "process that ended. Send it again if you still want it.",
                id=command_id, command=name or None, status="error", reason="stale",
            )
        trainer.run.flush()

    # -- commands (each returns the answer's message or raises) -----------------------------------

    def _freeze(self, trainer: Trainer, args: dict[str, Any]) -> str:
        modules = trainer.finetuner.freeze(args["pattern"], where=f"freeze {args['pattern']!r}", keep_trainable=True)
        self._tree_changed(trainer, "freeze", f"froze {', '.join(modules)}", modules=modules, pattern=args["pattern"],
                           command_id=args["_id"])
        return f"froze {', '.join(modules)}"

    def _unfreeze(self, trainer: Trainer, args: dict[str, Any]) -> str:
        lr = args.get("lr")
        if lr is not None:
            _check_lr_bound(trainer, lr, args)
        modules = trainer.finetuner.unfreeze(args["pattern"], lr, where=f"unfreeze {args['pattern']!r}")
        text = f"unfroze {', '.join(modules)}" + (f" at lr {lr:g}" if lr is not None else "")
        self._tree_changed(trainer, "unfreeze", text, modules=modules, pattern=args["pattern"], lr=lr,
                           command_id=args["_id"])
        return text

    def _set_lr(self, trainer: Trainer, args: dict[str, Any]) -> str:
        group, lr = args["group"], args["lr"]
        _check_lr_bound(trainer, lr, args)
        trainer.finetuner.set_lr(group, lr)
        trainer.finetune_changed()  # no event of its own: the answer says it, the lr monitor records the groups
        return f"lr of {group} set to {lr:g}"

    def _pause(self, trainer: Trainer, args: dict[str, Any]) -> str:
        if self.paused:
            return "already paused"
        self.paused = True
        self._mark_paused(trainer, True)
        return f"paused at step {trainer.global_step}"

    def _resume(self, trainer: Trainer, args: dict[str, Any]) -> str:
        if not self.paused:
            return "not paused; nothing to do"
        self.paused = False
        self._mark_paused(trainer, False)
        return f"resumed at step {trainer.global_step}"

    def _stop(self, trainer: Trainer, args: dict[str, Any]) -> str:
        trainer.request_stop(f"stopped by a control command ({args['_id']})", status="stopped")
        return f"stopping at step {trainer.global_step}; last.pt is saved on the way out"

    def _prune(self, trainer: Trainer, args: dict[str, Any]) -> str:
        # a stop whose final status says why: the trial was hopeless, not stopped by hand
        reason = args.get("reason") or f"pruned by a control command ({args['_id']})"
        trainer.request_stop(reason, status="pruned")
        return f"pruning at step {trainer.global_step}; last.pt is saved on the way out"

    def _checkpoint(self, trainer: Trainer, args: dict[str, Any]) -> str:
        if not self._main:
            return "saved by rank 0"
        if trainer.run is None or trainer.model is None:
            raise CommandRefused("this trainer has no run directory to save into.")
        try:
            path = trainer.save_checkpoint(trainer.run.path / CHECKPOINT_DIR / "last.pt", reason="control")
        except NonFiniteWeights:
            raise CommandRefused("the model has non-finite weights; keeping the last good checkpoint.") from None
        return f"saved {path.name} at step {trainer.global_step}"

    def _validate(self, trainer: Trainer, args: dict[str, Any]) -> str:
        metrics = trainer.validate("val")
        # validate() leaves every module in train mode; frozen BatchNorm layers go back to eval
        trainer.finetuner.apply_bn_policy()
        trainer.record_evaluation("val", metrics)
        shown = ", ".join(f"{k} {metrics[k]:.4g}" for k in ("loss", "acc") if isinstance(metrics.get(k), (int, float)))
        return f"validated at step {trainer.global_step}: {shown}"

    # -- helpers --------------------------------------------------------------------------------

    def _tree_changed(self, trainer: Trainer, kind: str, message: str, **fields: Any) -> None:
        """Log the change and rewrite model.json (before the answer, so a client that sees the answer
        finds the new tree)."""
        trainer.finetune_changed({"kind": kind, "message": message, "source": "control", **fields})

    def _mark_paused(self, trainer: Trainer, paused: bool) -> None:
        if trainer.run is not None:
            info, now = trainer.run.info, time.time()
            held = info.get("paused_seconds") or 0.0
            since = info.get("paused_since")
            if not paused and isinstance(since, (int, float)):
                held += max(0.0, now - since)  # a viewer's ETA leaves the pause out
            trainer.run.update(paused=paused, paused_since=now if paused else None, paused_seconds=round(held, 3),
                               step=trainer.global_step)
        # "unpaused", not "resumed": that event is a run continuing from a checkpoint
        word = "paused" if paused else "unpaused"
        trainer.log_event(word, f"{word} at step {trainer.global_step}")


def _check_lr_bound(trainer: Trainer, lr: float, args: dict[str, Any]) -> None:
    """Refuse an lr far above the run's largest base lr unless the command says ``force``."""
    largest = max((float(g["base_lr"]) for g in trainer.finetuner.groups_summary()), default=None)
    if not args.get("force") and control.lr_needs_force(lr, largest):
        raise CommandRefused(f"{control.lr_force_reason(lr, largest)}; send it with --force if you mean it.",
                             needs_force=True)


def _younger_than(path: Path, seconds: float) -> bool:
    """Written less than ``seconds`` ago; a modification time in the future (a skewed clock, a copied
    file) counts as old, or the file would wait forever."""
    try:
        age = time.time() - path.stat().st_mtime
    except OSError:
        return False
    return 0 <= age < seconds


def _identity(path: Path, obj: dict[str, Any] | None) -> tuple[str, str, Any]:
    """The id, command name and args a file claims, fit to be echoed in an answer."""
    obj = obj or {}
    raw_id, name = obj.get("id"), obj.get("command")
    command_id = raw_id if isinstance(raw_id, str) and 0 < len(raw_id) <= 80 else path.stem[:80]
    return command_id, control.clip(str(name), 80) if name else "", obj.get("args") or {}
