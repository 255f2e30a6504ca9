"""``ftui ctl``: send a control command to a running run and wait for its answer.

Exit codes: 0 the trainer applied the command; 1 it refused it (the reason is printed), did not answer
within ``--timeout``, or ended before answering; 2 bad input (unknown run, a run that is not running,
an unknown command or a bad argument) — raised as a :class:`~core.errors.UserError`.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import typer

from core import control
from core.errors import RunError
from core.runs import ACTIVE_STATUSES, RUN_JSON, live_status, newer_namesakes, read_json, resolve_run


def ctl_command(run_spec: str, command: str, args: list[str], *, timeout: float, root: Path) -> int:
    """Send ``command`` to the run, print the trainer's answer; 0 ok, 1 refused or no answer, 2 bad input."""
    run_dir = resolve_run(run_spec, root)
    parsed = control.parse_cli_args(command, args)
    info = read_json(run_dir / RUN_JSON) or {}
    status = live_status(info)
    if status not in ACTIVE_STATUSES:
        # `ftui run` names a run NAME-2 when NAME is taken: the one meant is most likely the newer one
        live = [(path, live_status(other)) for path, other in newer_namesakes(run_dir)]
        live = [(path, state) for path, state in live if state in ACTIVE_STATUSES]
        if live:
            newer, state = live[0]
            by_name = Path(run_spec).parent == Path(".")  # typed as a name, not as a path
            root_args = ["--root", str(root)] if by_name and root != Path("runs") else []
            again = ["ftui", "ctl", *root_args, newer.name if by_name else str(newer), command, *args]
            raise RunError(
                f"{run_dir}: the run is {status}, so there is nothing to control; {newer.name} is a newer run of "
                f"the same name and is {state}. Fix: `{shlex.join(again)}`."
            )
        raise RunError(
            f"{run_dir}: the run is {status}, so there is nothing to control. "
            f"Fix: resume it with `ftui run --resume {run_dir}` first, or pick a running run."
        )
    tail = control.answers_tail(run_dir)
    cmd = control.send(run_dir, command, parsed, sender="ftui ctl")
    shown = " ".join([command, *args])
    answer = control.wait_for_answer(tail, cmd.id, timeout, alive=lambda: _still_active(run_dir))
    if answer is None:
        if not _still_active(run_dir):
            typer.echo(f"{run_dir.name}: the run ended before it answered '{shown}'.", err=True)
        else:
            typer.echo(
                f"{run_dir.name}: no answer to '{shown}' within {timeout:g}s (the command stays queued in "
                f"{run_dir / 'control'}; the trainer applies it at its next step boundary).",
                err=True,
            )
        return 1
    message = answer.get("message") or ""
    if answer.get("status") == "ok":
        typer.echo(f"{run_dir.name}: {shown}: ok" + (f" — {message}" if message else ""))
        return 0
    typer.echo(f"{run_dir.name}: {shown}: refused — {message}", err=True)
    if answer.get("needs_force"):
        again = ["ftui", "ctl", run_spec, command, *args, "--force"]
        if root != Path("runs"):
            again[2:2] = ["--root", str(root)]
        typer.echo(f"If you mean it: {shlex.join(again)}", err=True)
    return 1


def _still_active(run_dir: Path) -> bool:
    return live_status(read_json(run_dir / RUN_JSON) or {}) in ACTIVE_STATUSES
