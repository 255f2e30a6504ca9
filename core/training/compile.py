"""``trainer.compile``: training and evaluation compiled apart, static shapes, every compilation seen.

torch.compile (TorchDynamo) caches compiled graphs per code object, behind guards on what the graph
assumed: the batch shape, train or eval mode, grad mode, which parameters require gradients. A guard
that fails recompiles; past ``torch._dynamo.config.recompile_limit`` entries for one code object it
gives up and runs that code eagerly, with one warning on stderr. In a fine-tuning run that can
happen quietly: each live freeze or unfreeze flips ``requires_grad`` (a recompile of training and
of evaluation), DDP re-wrapping after it is another, and a partial last evaluation batch would turn
on dynamic shapes. So:

* evaluation calls the model through :class:`Evaluating`, a code object of its own: its graphs
  (eval mode, no grad, the last partial batch) never share training's cache or recompile budget;
* both compile with ``dynamic=False``: a batch of another size is one more static graph (the last
  evaluation batch), not a switch to slower symbolic-shape kernels for everything after it;
* the recompile limit is raised to :data:`RECOMPILE_LIMIT` (a run may freeze and unfreeze many times);
* :class:`CompileWatch` collects every compilation, with its time and, for a recompilation, the guard
  that failed; the ``CompileMonitor`` callback writes them as ``compile`` events, and hitting the
  limit as a ``warning`` (the app shows both).

TorchDynamo has no public hook for recompilations yet: the watch uses its compile callbacks
(``torch._dynamo.callback``) and its ``recompiles`` log, and degrades to nothing if they move.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

#: What both compilations are given; tests swap in ``backend="eager"`` (dynamo's guards without codegen).
COMPILE_OPTIONS: dict[str, Any] = {"dynamic": False}

#: Compiled graphs kept per code object before dynamo falls back to eager (torch's default is 8).
RECOMPILE_LIMIT = 64

_RECOMPILES_LOGGER = "torch._dynamo.guards.__recompiles"


class Evaluating(nn.Module):
    """``module`` as evaluation calls it. The wrapper's ``forward`` is a code object of its own, so
    torch.compile caches evaluation's graphs apart from training's (see the module docstring)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)


def compile_pair(train_target: nn.Module, model: nn.Module) -> tuple[nn.Module, nn.Module]:
    """(compiled ``train_target`` — the model or its DDP wrapper —, compiled evaluation of ``model``)."""
    dynamo = torch._dynamo.config
    for name in ("recompile_limit", "cache_size_limit"):  # the name changed across torch versions
        if hasattr(dynamo, name):
            setattr(dynamo, name, max(int(getattr(dynamo, name)), RECOMPILE_LIMIT))
    return torch.compile(train_target, **COMPILE_OPTIONS), torch.compile(Evaluating(model), **COMPILE_OPTIONS)


@dataclass(frozen=True)
class CompileNote:
    """One compilation (``kind`` "compile") or the recompile limit reached (``kind`` "limit")."""

    kind: str
    compile_id: str  # dynamo's "frame/count": count > 0 is a recompilation of that frame
    seconds: float | None = None
    function: str | None = None
    reason: str | None = None

    @property
    def recompile(self) -> bool:
        return self.kind == "compile" and not self.compile_id.endswith("/0")

    def message(self, phase: str = "") -> str:
        """What the run's event says; ``phase`` names what was compiled (``training``, ``evaluation``)."""
        if self.kind == "limit":
            where = f" in {phase}" if phase else ""
            return (f"torch.compile reached its recompile limit{where}: that code now runs eagerly (slower)"
                    + (f"; last reason: {self.reason}" if self.reason else ""))
        what = "recompiled" if self.recompile else "compiled"
        text = f"{what} {phase or self.function or 'a graph'} ({self.compile_id})"
        if self.seconds is not None:
            text += f" in {self.seconds:.1f} s"
        return text + (f" because {self.reason}" if self.reason else "")


class CompileWatch(logging.Handler):
    """Collects dynamo's compilations while installed; :meth:`drain` hands them over (thread-safe)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self._lock_notes = threading.Lock()
        self._notes: list[CompileNote] = []
        self._reasons: list[tuple[str | None, str | None]] = []  # (function, reason) of recompiles to come
        self._started: dict[str, float] = {}
        self._installed = False
        self._set_logs = False
        self._propagate = True

    # -- installing -----------------------------------------------------------------------------

    def install(self) -> CompileWatch:
        try:
            from torch._dynamo.callback import callback_handler
        except ImportError:  # another torch: no notes, training goes on
            return self
        callback_handler.register_start_callback(self._on_start)
        callback_handler.register_end_callback(self._on_end)
        if not os.environ.get("TORCH_LOGS"):  # the user's own log settings win (and print)
            torch._logging.set_logs(recompiles=True)
            self._set_logs = True
        recompiles = logging.getLogger(_RECOMPILES_LOGGER)
        self._propagate = recompiles.propagate
        recompiles.addHandler(self)
        recompiles.propagate = not self._set_logs  # ours only: the console stays clean
        logging.getLogger("torch._dynamo").addHandler(self)  # the recompile-limit warning
        self._installed = True
        return self

    def close(self) -> None:
        if self._installed:
            from torch._dynamo.callback import callback_handler

            callback_handler.remove_start_callback(self._on_start)
            callback_handler.remove_end_callback(self._on_end)
            recompiles = logging.getLogger(_RECOMPILES_LOGGER)
            recompiles.removeHandler(self)
            recompiles.propagate = self._propagate
            logging.getLogger("torch._dynamo").removeHandler(self)
            if self._set_logs:
                torch._logging.set_logs()
            self._installed = False
        super().close()

    # -- collecting -----------------------------------------------------------------------------

    def _on_start(self, args: Any) -> None:
        self._started[str(getattr(args, "compile_id", ""))] = time.perf_counter()

    def _on_end(self, args: Any) -> None:
        compile_id = str(getattr(args, "compile_id", ""))
        trigger = getattr(getattr(args, "callback_trigger", None), "name", "DYNAMO")
        if trigger != "DYNAMO":
            return  # the lazy backward's and autotuning's compilations belong to the forward's
        started = self._started.pop(compile_id, None)
        seconds = time.perf_counter() - started if started is not None else None
        function = reason = None
        if not compile_id.endswith("/0"):
            with self._lock_notes:
                if self._reasons:
                    function, reason = self._reasons.pop(0)
        self._add(CompileNote("compile", compile_id, seconds, function, reason))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a log record must never break training
            return
        if record.name == _RECOMPILES_LOGGER and text.startswith("Recompiling function"):
            function, reason = _parse_recompile(text)
            with self._lock_notes:
                self._reasons.append((function, reason))
        elif "recompile_limit" in text or "cache_size_limit" in text:
            function = re.search(r"function: '([^']+)'", text)
            reason = re.search(r"last reason: (.+)", text)
            self._add(CompileNote("limit", "", None, function.group(1) if function else None,
                                  reason.group(1).strip() if reason else None))

    def _add(self, note: CompileNote) -> None:
        with self._lock_notes:
            self._notes.append(note)

    def drain(self) -> list[CompileNote]:
        """The notes collected since the last call."""
        with self._lock_notes:
            notes, self._notes = self._notes, []
        return notes


def _parse_recompile(text: str) -> tuple[str | None, str | None]:
    """(function, first guard failure) of dynamo's "Recompiling function F in FILE:LINE ..." message."""
    match = re.match(r"Recompiling function (\S+)", text)
    failures = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("- "):
            failure = re.sub(r"^\d+/\d+: ", "", line[2:])  # the compile id it failed against
            failure = failure.split(" Guard failed on a parameter", 1)[0].strip()  # dynamo's advice, not ours
            if failure not in failures:
                failures.append(failure)
    # one failure per cached graph, newest first: the cause is often not the first one (a shape for the
    # graph of another batch size, requires_grad for the graph this batch would have used)
    reason = "; ".join(failures[:3]) + (f" (and {len(failures) - 3} more)" if len(failures) > 3 else "")
    return (match.group(1) if match else None), reason or None
