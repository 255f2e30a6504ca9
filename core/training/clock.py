"""Time accounting of the training loop: the training clock and the logging window's host figures.

``train_seconds`` (``run.json``, checkpoints, ``trainer.max_time``) counts only time spent training
epochs: validation does not count, and neither does time a callback excludes (a ``pause`` command
holding the loop). Exclusion affects only a clock that is running: a pause at an epoch boundary or
before validation was never counted, so there is nothing to take off.
"""

from __future__ import annotations

import time


class StepClock:
    """Seconds of training: runs from :meth:`start` to :meth:`stop` (one epoch's training), summed.

    Args:
        seconds: training time already done (a resumed run's ``train_seconds``).
    """

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = float(seconds)
        """Training time of the finished stretches (what ``train_seconds`` reports)."""
        self._since: float | None = None

    @property
    def running(self) -> bool:
        return self._since is not None

    def start(self) -> None:
        """Start counting (an epoch's training begins)."""
        self._since = time.perf_counter()

    def stop(self) -> None:
        """Stop counting and add the stretch to :attr:`seconds` (no-op when not running)."""
        if self._since is not None:
            self.seconds += time.perf_counter() - self._since
            self._since = None

    def exclude(self, seconds: float) -> None:
        """Leave out ``seconds`` of the running stretch (they passed while the loop was held)."""
        if self._since is not None:
            self._since += seconds

    def total(self) -> float:
        """Finished stretches plus the running one so far (what ``trainer.max_time`` compares)."""
        running = time.perf_counter() - self._since if self._since is not None else 0.0
        return self.seconds + running


class LogWindow:
    """The host figures of one logging window: when it started, batches waited for, samples trained.

    The device figures (losses, correct counts) are in :class:`core.training.metrics.TrainAccumulator`.
    """

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.wait = 0.0
        self.samples = 0

    def reset(self) -> None:
        """Start a new window now."""
        self.start = time.perf_counter()
        self.wait = 0.0
        self.samples = 0

    def exclude(self, seconds: float) -> None:
        """Leave ``seconds`` out of the window's duration (so samples/s is about training only)."""
        self.start += seconds

    def elapsed(self) -> float:
        """Seconds since the window started (never 0, so rates stay finite)."""
        return max(1e-9, time.perf_counter() - self.start)
