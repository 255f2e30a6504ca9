"""A background thread that samples GPUs and host at a fixed interval and hands each record to a sink.

The cost per sample is a few psutil reads of ``/proc`` and a handful of NVML calls (well under a
millisecond of CPU each on a typical box), so at 1 Hz the thread stays far below 1 % of a core;
:attr:`SystemSampler.cpu_seconds` measures it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from core.system.host import HostSampler
from core.system.nvml import Nvml


@dataclass(frozen=True)
class GpuRef:
    """One GPU a run uses: how NVML knows it and how this process's torch knows it."""

    nvml: int | str | None  # NVML index or UUID; None when NVML is unavailable
    torch_index: int | None  # CUDA index in this process, for torch's memory figures
    name: str | None = None  # fallback name when NVML cannot give one


GPU_FIELDS = (
    "index", "name", "util", "mem_used", "mem_total", "temp", "power", "power_limit", "sm_clock",
    "torch_allocated", "torch_reserved", "torch_peak",
)


class SystemSampler:
    """Samples at ``interval`` seconds on a daemon thread; :meth:`stop` takes a last sample and joins.

    Args:
        sink: receives each record (a dict in the ``system.jsonl`` format); called on the thread.
        interval: seconds between samples.
        nvml: a started :class:`Nvml`, or None for host figures only.
        gpus: the GPUs to record (empty for a CPU run).
        workers: returns the DataLoader worker count (None when unknown); called at each sample.
        host: the host sampler (default: this process).
        torch_memory: reads torch's CUDA memory figures for ``gpus`` that have a ``torch_index``.
    """

    def __init__(
        self,
        sink: Callable[[dict[str, Any]], None],
        *,
        interval: float = 1.0,
        nvml: Nvml | None = None,
        gpus: list[GpuRef] | None = None,
        workers: Callable[[], int | None] | None = None,
        host: HostSampler | None = None,
        torch_memory: bool = True,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be > 0 seconds")
        self.sink = sink
        self.interval = float(interval)
        self.nvml = nvml
        self.gpus = list(gpus or [])
        self.workers = workers
        self.host = host or HostSampler()
        self.torch_memory = torch_memory
        self.samples = 0
        self.errors = 0
        self.last_error: BaseException | None = None
        self.cpu_seconds = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sink_lock = threading.Lock()

    # -- one sample -------------------------------------------------------------------------------

    def sample(self) -> dict[str, Any]:
        """Take one record now (on the calling thread)."""
        record: dict[str, Any] = {"time": time.time()}
        record.update(self.host.sample())
        record["workers"] = self._workers()
        record["gpus"] = self._gpu_figures()
        return record

    def _workers(self) -> int | None:
        if self.workers is None:
            return None
        try:
            value = self.workers()
        except Exception:  # the loader may be rebuilt between epochs; unknown for this sample
            return None
        return int(value) if isinstance(value, int) else None

    def _gpu_figures(self) -> list[dict[str, Any]]:
        nvml_by_ref: dict[int | str, dict[str, Any]] = {}
        refs = [g.nvml for g in self.gpus if g.nvml is not None]
        if self.nvml is not None and self.nvml.available and refs:
            for ref in refs:
                figures = self.nvml.sample([ref])
                if figures:
                    nvml_by_ref[ref] = figures[0]
        out = []
        for position, gpu in enumerate(self.gpus):
            row: dict[str, Any] = dict.fromkeys(GPU_FIELDS)
            # NVML's index (the one nvidia-smi shows) wins when known; cuda_index is this process's.
            row["index"] = gpu.torch_index if gpu.torch_index is not None else position
            row["cuda_index"] = gpu.torch_index
            row["name"] = gpu.name
            found = nvml_by_ref.get(gpu.nvml) if gpu.nvml is not None else None
            if found:
                row.update({k: v for k, v in found.items() if v is not None or k not in ("index", "name")})
            if self.torch_memory and gpu.torch_index is not None:
                from core.system.torch_memory import cuda_memory

                row.update(cuda_memory(gpu.torch_index))
            out.append(row)
        return out

    # -- the thread -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the thread (no-op if running)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="ftui-telemetry", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0, *, final_sample: bool = True) -> None:
        """Stop the thread; with ``final_sample`` record one last sample so short runs have one too."""
        thread = self._thread
        if thread is None:
            return
        self._stop.set()
        thread.join(timeout)
        self._thread = None
        if final_sample and not thread.is_alive():
            self._tick()

    @property
    def running(self) -> bool:
        """Whether the thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._tick()

    def _tick(self) -> None:
        started = time.thread_time()
        try:
            record = self.sample()
            with self._sink_lock:
                self.sink(record)
            self.samples += 1
        except Exception as exc:  # telemetry must never take the training run down
            self.errors += 1
            self.last_error = exc
        finally:
            self.cpu_seconds += time.thread_time() - started
