"""``ftui sweep CONFIG --param KEY=DIST... --trials N``: an Optuna search where each trial is a run.

Exit codes: 0 the study reached N trials; 1 every trial this process ran failed; 2 bad input (config,
--param, storage, sampler, pruner, a study that searches something else); 130/143 stopped by
SIGINT/SIGTERM (the running trials were interrupted and marked; the printed command resumes them).
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape


def sweep_command(config: Path, params: list[str], *, trials: int, parallel: int, overrides: list[str],
                  storage: str | None, name: str | None, sampler: str, pruner: str, seed: int | None,
                  root: Path | None) -> int:
    """Run (or resume, or join) a sweep; returns the exit code."""
    try:
        import optuna  # noqa: F401
    except ImportError:
        from core.errors import UserError

        raise UserError("ftui sweep needs Optuna, which is not installed. Fix: pip install 'ftui[sweep]' "
                        "(or pip install optuna).") from None
    from core.sweep.runner import Sweep, SweepOptions
    from core.sweep.space import parse_space

    console = Console(emoji=False, highlight=False, soft_wrap=True)
    options = SweepOptions(config=config, params=parse_space(params), trials=trials, parallel=parallel,
                           overrides=overrides, storage=storage, name=name, sampler=sampler, pruner=pruner,
                           seed=seed, root=root)
    sweep = Sweep(options, say=lambda line: console.print(escape(line)))
    sweep.prepare()
    return sweep.run()
