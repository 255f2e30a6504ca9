"""Where this process sits in a torchrun job, read from the environment (torch-free).

``ftui run`` reads it before it imports torch, to know whether it is rank 0 (which prints and records)
or a worker of another rank; :mod:`core.training.distributed` re-exports both names.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the job, as torchrun's environment describes it."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        """More than one process takes part."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes the run directory."""
        return self.rank == 0

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> DistEnv:
        """Read ``RANK``/``LOCAL_RANK``/``WORLD_SIZE`` (absent: a single process)."""
        env = os.environ if environ is None else environ
        world = int(env.get("WORLD_SIZE", "1") or 1)
        rank = int(env.get("RANK", "0") or 0)
        local = int(env.get("LOCAL_RANK", str(rank)) or 0)
        return cls(rank=rank, local_rank=local, world_size=world)


def launched_by_torchrun(environ: dict[str, str] | None = None) -> bool:
    """Whether this process is a torchrun worker (then ``ftui run`` trains instead of launching)."""
    env = os.environ if environ is None else environ
    return "TORCHELASTIC_RUN_ID" in env or ("RANK" in env and "WORLD_SIZE" in env)
