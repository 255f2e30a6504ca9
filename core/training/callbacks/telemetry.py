"""The trainer callback that records telemetry (``core.system``) to the run's ``system.jsonl``.

It starts a :class:`~core.system.sampler.SystemSampler` in ``on_fit_start`` and stops it in
``on_fit_end``, ``on_exception`` and ``teardown`` (whichever comes first). The sampler thread writes
``system.jsonl`` through its own :class:`core.runs.JsonlWriter`: the run's shared writers are not
thread-safe (a flush on the training thread could drop or repeat a line appended by the sampler),
and nothing else writes that file. Format: ``docs/telemetry.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.runs import SYSTEM, JsonlWriter
from core.system.nvml import Nvml
from core.system.sampler import GpuRef, SystemSampler
from core.training.callback import Callback

if TYPE_CHECKING:  # pragma: no cover
    from core.training.trainer import Trainer

NO_GPU_MESSAGE = "no NVIDIA GPU found: recording host figures only"
NO_NVML_MESSAGE = "NVML unavailable: recording host and PyTorch memory figures only"


class TelemetryCallback(Callback):
    """Samples GPUs (NVML + torch memory) and host (psutil) every ``interval`` seconds.

    Args:
        interval: seconds between samples (``logging.system_interval``).
        nvml_backend: a pynvml-like object for tests; None uses the real ``pynvml``.
    """

    def __init__(self, interval: float = 1.0, *, nvml_backend: Any | None = None) -> None:
        if interval <= 0:
            raise ValueError("interval must be > 0 seconds")
        self.interval = float(interval)
        self.nvml_backend = nvml_backend
        self.sampler: SystemSampler | None = None
        self._nvml: Nvml | None = None
        self._writer: JsonlWriter | None = None

    def on_fit_start(self, trainer: Trainer) -> None:
        self._stop()
        run = trainer.run
        if run is None:  # nothing records this run (notebook use, or a non-zero rank)
            return
        nvml = Nvml(self.nvml_backend)
        nvml.start()
        gpus = self._gpus(trainer, nvml)
        if not nvml.available:
            cuda = trainer.device.type == "cuda"
            run.log_event("warning", NO_NVML_MESSAGE if cuda else NO_GPU_MESSAGE, reason=nvml.reason)
        self._nvml = nvml
        self._writer = JsonlWriter(run.path / SYSTEM, run.flush_seconds)
        self.sampler = SystemSampler(
            self._writer.write,
            interval=self.interval,
            nvml=nvml,
            gpus=gpus,
            workers=lambda: _loader_workers(trainer),
        )
        self.sampler.start()

    def on_fit_end(self, trainer: Trainer) -> None:
        self._stop()

    def on_exception(self, trainer: Trainer, exception: BaseException) -> None:
        self._stop()

    def teardown(self, trainer: Trainer, stage: str) -> None:
        self._stop()

    def _stop(self) -> None:
        if self.sampler is not None:
            self.sampler.stop()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._nvml is not None:
            self._nvml.close()
            self._nvml = None

    def _gpus(self, trainer: Trainer, nvml: Nvml) -> list[GpuRef]:
        """The GPUs this run uses: its own CUDA device, plus its peers' in a one-node DDP run."""
        if trainer.device.type != "cuda":
            return []
        from core.system.torch_memory import cuda_device_refs, visible_to_nvml_index

        import torch

        index = trainer.device.index
        own = index if index is not None else torch.cuda.current_device()
        world = trainer.world_size
        indices = list(range(world)) if world > 1 and world <= torch.cuda.device_count() else [own]
        refs: list[int | str | None] = [None] * len(indices)
        if nvml.available:
            refs = list(cuda_device_refs(indices))
            for i, ref in enumerate(refs):
                if not nvml.sample([ref]):  # UUID unknown to NVML (old torch, MIG): map the index instead
                    refs[i] = visible_to_nvml_index(indices[i])
        out = []
        for index, ref in zip(indices, refs):
            # torch's allocator figures are per process: only our own device's are meaningful here.
            out.append(GpuRef(nvml=ref, torch_index=index if index == own else None, name=_cuda_name(index)))
        return out


def _cuda_name(index: int) -> str | None:
    import torch

    try:
        return torch.cuda.get_device_name(index)
    except Exception:  # a name is cosmetic; NVML usually gives it anyway
        return None


def _loader_workers(trainer: Trainer) -> int | None:
    """DataLoader workers of the training loader (an EpochLoader wraps a DataLoader), else the config's."""
    loader = trainer.train_loader
    for obj in (loader, getattr(loader, "loader", None), getattr(loader, "dataloader", None)):
        value = getattr(obj, "num_workers", None)
        if isinstance(value, int):
            return value
    value = trainer.cfg.data.num_workers
    return value if isinstance(value, int) else None
