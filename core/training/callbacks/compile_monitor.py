"""``trainer.compile``: every compilation of the run as a ``compile`` event, the recompile limit as a warning.

A live freeze, an unfreeze, a DDP re-wrap or a batch of a new size makes torch.compile recompile;
each one costs seconds and, past the recompile limit, the run silently goes on uncompiled. This
callback writes each (re)compilation with its time and the guard that failed, so the event log and
the plots' markers show when and why (see :mod:`core.training.compile`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.training.callback import Callback

if TYPE_CHECKING:  # pragma: no cover
    from core.training.compile import CompileWatch
    from core.training.trainer import Trainer


class CompileMonitor(Callback):
    """Writes ``compile`` events (and a ``warning`` at the recompile limit) while the run trains."""

    def __init__(self) -> None:
        self._watch: CompileWatch | None = None

    def setup(self, trainer: Trainer, stage: str) -> None:
        from core.training.compile import CompileWatch

        if self._watch is None:
            self._watch = CompileWatch().install()

    def on_train_batch_end(self, trainer: Trainer, outputs: Any, batch: Any, batch_idx: int) -> None:
        self._record(trainer, "training")

    def on_validation_end(self, trainer: Trainer) -> None:
        self._record(trainer, "evaluation")

    def on_test_end(self, trainer: Trainer) -> None:
        self._record(trainer, "evaluation")

    def teardown(self, trainer: Trainer, stage: str) -> None:
        if self._watch is not None:
            self._record(trainer, "")
            self._watch.close()
            self._watch = None

    def _record(self, trainer: Trainer, phase: str) -> None:
        if self._watch is None:
            return
        for note in self._watch.drain():
            kind = "warning" if note.kind == "limit" else "compile"
            fields: dict[str, Any] = {"compile_id": note.compile_id, "recompile": note.recompile}
            if phase:
                fields["phase"] = phase
            if note.seconds is not None:
                fields["seconds"] = round(note.seconds, 3)
            if note.reason:
                fields["reason"] = note.reason
            trainer.log_event(kind, note.message(phase), **fields)
