"""How the trainer spreads over processes: one process, or DistributedDataParallel under torchrun.

The trainer holds one strategy (``trainer.strategy``, as in Lightning) and asks it for everything that
differs between one process and many: the device and process group, wrapping the model, keeping
gradients local during accumulation, reducing figures over the ranks, agreeing on step-boundary flags,
naming a rank's failure. :class:`Strategy` is one process — every method a no-op or the identity —
and :class:`DDPStrategy` the distributed one, so the loop has no ``if distributed`` of its own. The
collectives themselves are in :mod:`core.training.distributed`; ``docs/distributed.md`` describes the
behaviour.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ContextManager

import torch
from torch import nn

from core.errors import ConfigError, TrainingFailed
from core.training import distributed
from core.training.distributed import DistEnv

if TYPE_CHECKING:  # pragma: no cover
    from core.training.metrics import ClassificationMetrics
    from core.training.trainer import Trainer


class Strategy:
    """Training in this one process: nothing to wrap, reduce or agree on."""

    def __init__(self, env: DistEnv | None = None) -> None:
        self.env = env if env is not None else DistEnv()
        self.ddp: nn.Module | None = None
        """The DistributedDataParallel wrapper (DDP only)."""

    @staticmethod
    def from_env(devices: int = 1) -> Strategy:
        """The strategy torchrun's environment asks for; ``devices`` is ``trainer.devices``."""
        env = DistEnv.from_env()
        if devices > 1 and not env.enabled:
            raise ConfigError(
                f"trainer.devices: {devices} asks for distributed training, but this process was not "
                "started by torchrun. Fix: launch with `ftui run CONFIG --nproc N` (or `torchrun --nproc-per-node N "
                "-m tui.cli run CONFIG`), or set trainer.devices: 1 to train in this process."
            )
        return DDPStrategy(env) if env.enabled else Strategy(env)

    # -- facts ----------------------------------------------------------------------------------

    @property
    def distributed(self) -> bool:
        """More than one process takes part."""
        return self.env.enabled

    @property
    def rank(self) -> int:
        return self.env.rank

    @property
    def world_size(self) -> int:
        return self.env.world_size

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes the run directory."""
        return self.env.is_main

    # -- setting up -----------------------------------------------------------------------------

    def setup_environment(self, device: torch.device) -> torch.device:
        """The device this process trains on (opening the process group where there is one)."""
        return device

    def seed_rank(self, seed: int, step: int = 0) -> None:
        """Give this rank its own random streams from ``step`` on (rank 0 keeps the run's seed)."""

    def wrap(self, model: nn.Module, *, compile_: bool) -> tuple[nn.Module, nn.Module]:
        """(the model that trains, the model that evaluates): compiled apart on request (core.training.compile)."""
        if not compile_:
            return model, model
        from core.training.compile import compile_pair

        return compile_pair(model, model)

    def rewrap_if_trainable_changed(self, trainer: Trainer) -> bool:
        """After a freeze or unfreeze: re-wrap if the wrapper depends on the trainable set."""
        return False

    def no_sync(self, is_step: bool) -> ContextManager[Any]:
        """Around a forward/backward that does not step: keep its gradients local."""
        return contextlib.nullcontext()

    # -- figures and flags ----------------------------------------------------------------------

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (small picklable objects)."""
        return obj

    def reduce_flags(self, flags: list[int]) -> list[int]:
        """Element-wise maximum of small integer flags over the ranks."""
        return list(flags)

    def any_rank(self, flag: bool) -> bool:
        """True when ``flag`` is true on any rank."""
        return flag

    def before_evaluation(self, model: nn.Module) -> None:
        """Make the evaluated model's buffers those of rank 0 (whose checkpoints are kept)."""

    def reduce_metrics(self, metrics: ClassificationMetrics) -> None:
        """Sum the evaluation's counts over the ranks (then the figures are those of one process)."""

    @property
    def reduces_train_window(self) -> bool:
        """Whether the logging window is summed over the ranks at each read-out."""
        return False

    # -- the run's life ---------------------------------------------------------------------------

    def announce(self, trainer: Trainer) -> None:
        """Record how the run is spread (run.json, a ``ddp`` event) at the start of training."""

    def finish(self, trainer: Trainer) -> None:
        """After the last epoch: agree on what came during it, check the ranks ended alike."""

    def name_failure(self, failure: BaseException, exc: BaseException, run_dir: Path | None) -> BaseException:
        """The failure as the run should record it (which rank failed first, under DDP)."""
        return failure


class DDPStrategy(Strategy):
    """DistributedDataParallel on every process torchrun started (``RANK``/``WORLD_SIZE`` set).

    Every rank takes its shard of each epoch; rank 0 alone writes the run directory; the ranks agree
    at every optimizer step on signals, stop requests and control polls (one flag all-reduce on a
    CPU group), so all of them stop or apply a command at the same step.
    """

    def __init__(self, env: DistEnv) -> None:
        super().__init__(env)
        self._device = torch.device("cpu")
        self._trainable: tuple[str, ...] = ()
        self._compile = False

    def setup_environment(self, device: torch.device) -> torch.device:
        self._device = distributed.device_for(device, self.env)
        distributed.init_process_group(self._device, self.env)
        return self._device

    def seed_rank(self, seed: int, step: int = 0) -> None:
        from core.training.runtime import seed_everything

        if self.rank > 0:
            # checkpoints hold rank 0's streams; the other ranks keep streams of their own (dropout...)
            seed_everything(distributed.rank_seed(seed, self.rank, step))

    def wrap(self, model: nn.Module, *, compile_: bool) -> tuple[nn.Module, nn.Module]:
        """DDP records which parameters need gradients when it is built; a freeze or unfreeze later
        re-wraps the same module in a new DDP instance (see :meth:`rewrap_if_trainable_changed`)."""
        self._compile = compile_
        self._trainable = _trainable_names(model)
        self.ddp = None
        if not self._trainable:
            return super().wrap(model, compile_=compile_)
        from torch.nn.parallel import DistributedDataParallel

        ids = [self._device.index] if self._device.type == "cuda" else None
        self.ddp = DistributedDataParallel(model, device_ids=ids)
        if not compile_:
            return self.ddp, model  # evaluation is never DDP: the ranks see uneven shards
        from core.training.compile import compile_pair

        return compile_pair(self.ddp, model)

    def rewrap_if_trainable_changed(self, trainer: Trainer) -> bool:
        """Changing ``requires_grad`` under a live DDP instance breaks its gradient reduction
        (Lightning-AI/pytorch-lightning#20340); a new instance registers the new set. The optimizer
        holds the module's parameters and is untouched. Every rank does it at the same step."""
        model = trainer.model
        if model is None or _trainable_names(model) == self._trainable:
            return False
        trainer.train_model, trainer.eval_model = self.wrap(model, compile_=self._compile)
        trainable = len(self._trainable)
        trainer.log_event("ddp", f"re-wrapped the model in DistributedDataParallel ({trainable} trainable tensors)",
                          trainable_tensors=trainable)
        return True

    def no_sync(self, is_step: bool) -> ContextManager[Any]:
        # gradients of accumulation batches stay local until the batch that steps
        return self.ddp.no_sync() if self.ddp is not None and not is_step else contextlib.nullcontext()

    def broadcast(self, obj: Any) -> Any:
        return distributed.broadcast_object(obj)

    def reduce_flags(self, flags: list[int]) -> list[int]:
        return distributed.all_reduce_flags(flags)

    def any_rank(self, flag: bool) -> bool:
        return bool(distributed.all_reduce_flags([int(flag)])[0])

    def before_evaluation(self, model: nn.Module) -> None:
        distributed.broadcast_buffers(model)

    def reduce_metrics(self, metrics: ClassificationMetrics) -> None:
        metrics.all_reduce()

    @property
    def reduces_train_window(self) -> bool:
        return True

    def announce(self, trainer: Trainer) -> None:
        if trainer.run is None:
            return
        backend = distributed.backend_for(trainer.device)
        trainer.run.update(world_size=self.world_size, backend=backend)
        trainer.log_event("ddp", f"training on {self.world_size} processes (DistributedDataParallel, {backend})",
                          world_size=self.world_size, backend=backend)

    def finish(self, trainer: Trainer) -> None:
        trainer.agree_step()  # a signal that came during the last validation
        assert trainer.model is not None
        distributed.broadcast_buffers(trainer.model)
        hashes = distributed.all_gather_object(distributed.state_hash(trainer.model))
        same = len(set(hashes)) == 1
        text = (f"weights identical on all {len(hashes)} ranks" if same
                else f"weights differ between ranks: {', '.join(f'rank {i} {h[:12]}' for i, h in enumerate(hashes))}")
        trainer.log_event("ddp" if same else "warning", text, state_hashes=hashes, world_size=len(hashes), in_sync=same)

    def name_failure(self, failure: BaseException, exc: BaseException, run_dir: Path | None) -> BaseException:
        """Name the rank; rank 0 reports the rank that failed first.

        A failing rank other than 0 leaves its message in ``<run>/errors/``; when a collective then
        breaks under rank 0, rank 0 adopts that message, so run.json says which rank failed and why.
        """
        rank, message = self.rank, str(failure)
        tb = getattr(failure, "traceback", None)
        if rank != 0:
            distributed.write_rank_error(run_dir, rank, message, tb)
        else:
            peer_failure = distributed.looks_like_peer_failure(exc)
            peer = distributed.first_peer_error(run_dir, time.time()) if peer_failure else None
            if peer is not None:
                out = TrainingFailed(f"rank {peer['rank']} failed: {peer['message']}")
                out.traceback = peer.get("traceback")  # type: ignore[attr-defined]
                return out
            if peer_failure:
                message = f"{distributed.PEER_FAILURE} ({message})"
        try:
            named = type(failure)(f"rank {rank}: {message}")
        except TypeError:
            named = TrainingFailed(f"rank {rank}: {message}")
        if tb:
            named.traceback = tb  # type: ignore[attr-defined]
        return named


def _trainable_names(model: nn.Module) -> tuple[str, ...]:
    return tuple(n for n, p in model.named_parameters() if p.requires_grad)
