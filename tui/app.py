"""The ftui Textual app: the home screen (``ftui``) or one run's dashboard (``ftui watch RUN``).

The app never imports torch: it reads runs through ``core.runs`` and starts them with
``core.launch.launch_detached`` (a separate process in its own session), so closing the app or
losing the SSH connection never stops training. It stops them through their control channel
(:meth:`FtuiApp.request_stop`), from every screen the same way.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Iterable

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from core.errors import UserError
from core.runs import ACTIVE_STATUSES, iter_runs, live_status
from tui.run_control import RunControl
from tui.screens.home import HomeScreen

#: Where the bundled sample configs live when running from a checkout.
PACKAGE_SAMPLES = Path(__file__).resolve().parent.parent / "sample_configs"


def default_config_dirs(cwd: Path | None = None) -> list[Path]:
    """``sample_configs/`` of the current directory and of the checkout, then the current directory."""
    cwd = Path.cwd() if cwd is None else cwd
    return [cwd / "sample_configs", PACKAGE_SAMPLES, cwd]


class FtuiApp(App[None]):
    """Home screen by default; only a dashboard when ``watch`` is a run directory."""

    CSS_PATH = "app.tcss"
    TITLE = "ftui"
    BINDINGS = [
        Binding("q", "quit", "Quit", tooltip="Leave ftui; runs keep going."),
        Binding("question_mark", "help", "Help", key_display="?", tooltip="Show what this screen does and its keys."),
    ]

    def __init__(self, root: Path | str = "runs", *, watch: Path | None = None, config_dirs: list[Path] | None = None,
                 explain: Path | None = None, explain_split: str = "test",
                 explain_options: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.root = Path(root)
        self.watch_path = Path(watch) if watch is not None else None
        self.explain_path = Path(explain) if explain is not None else None
        self.explain_split = explain_split
        self.explain_options = dict(explain_options or {})
        self.config_dirs = config_dirs if config_dirs is not None else default_config_dirs()

    def get_default_screen(self) -> Screen:
        if self.explain_path is not None:
            from tui.screens.explain_screen import ExplainScreen

            return ExplainScreen(self.explain_path, split=self.explain_split, standalone=True, **self.explain_options)
        if self.watch_path is not None:
            from tui.screens.dashboard import DashboardScreen

            return DashboardScreen(self.watch_path, standalone=True)
        return HomeScreen(self.root, self.config_dirs)

    # ---- navigation ---------------------------------------------------------------------------

    def open_dashboard(self, path: Path) -> None:
        """Push the dashboard of the run in ``path`` (imported here: the runs table needs none of its plots)."""
        from tui.screens.dashboard import DashboardScreen

        self.push_screen(DashboardScreen(path))

    def open_inspector(self, path: Path) -> None:
        """Push the checkpoint inspector on ``path`` (safe loading: no pickled code)."""
        # Imported here: the inspector's workers load torch, which the rest of the app never needs.
        from tui.screens.inspect_screen import InspectScreen

        self.push_screen(InspectScreen(path))

    def open_explain(self, path: Path) -> None:
        """Push the Explain view of a checkpoint (the explaining runs in its own process)."""
        from tui.screens.explain_screen import ExplainScreen

        self.push_screen(ExplainScreen(path))

    def action_help(self) -> None:
        from tui.screens.help import HelpScreen

        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.screen))

    # ---- stopping runs ------------------------------------------------------------------------

    def request_stop(self, path: Path, info: dict[str, Any], *, control: RunControl | None = None) -> None:
        """The one way the app stops a run, from any screen or tab: confirm, then the control command
        ``stop``. The trainer finishes its current step, saves ``last.pt`` and ends ``stopped`` (exit 0);
        through the run directory, so a run on another host that shares it stops too. ``control``: the
        dashboard's, which then follows the answer."""
        from tui.screens.confirm import ConfirmScreen

        name = str(info.get("name") or path.name)
        status = live_status(info)
        if status not in ACTIVE_STATUSES:
            self.notify(f"{name} is not running ({status}).", severity="warning", markup=False)
            return
        sender = control if control is not None else RunControl(path)

        def answered(yes: bool | None) -> None:
            if not yes:
                return
            try:
                sender.send("stop")
            except (UserError, OSError) as exc:
                self.notify(f"Could not stop {name}: {exc}", severity="error", markup=False)
                return
            self.notify(f"Asked {name} to stop: it finishes its step, saves last.pt and ends stopped.", markup=False)

        self.push_screen(
            ConfirmScreen(f"Stop {name}?", "The trainer finishes its current step, saves checkpoints/last.pt and "
                          f"ends as stopped; resume it with `ftui run --resume {path}` (its own config)."),
            answered,
        )

    # ---- command palette ----------------------------------------------------------------------

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Every binding of the current screen with a description, then Textual's own commands."""
        seen: set[str] = set()
        for active in screen.active_bindings.values():
            binding = active.binding
            if not binding.description or binding.action in seen or not active.enabled:
                continue
            seen.add(binding.action)
            key = self.get_key_display(binding)
            yield SystemCommand(
                f"{binding.description} ({key})",
                binding.tooltip or binding.description,
                partial(self._run_binding, active.node, binding.action),
            )
        yield from super().get_system_commands(screen)

    async def _run_binding(self, node: Any, action: str) -> None:
        await self.run_action(action, node)

    # ---- leaving ------------------------------------------------------------------------------

    def exit_note(self) -> str | None:
        """What to tell the user after the app closed: which runs keep going and how to come back."""
        if self.explain_path is not None:
            return None
        if self.watch_path is not None:
            from core.runs import RUN_JSON, read_json

            info = read_json(self.watch_path / RUN_JSON) or {}
            if live_status(info) in ACTIVE_STATUSES:
                name = info.get("name", self.watch_path.name)
                return f"{name} keeps running in the background. Come back with: ftui watch {self.watch_path}"
            return None
        active = [(p, info) for p, info in iter_runs(self.root) if live_status(info) in ACTIVE_STATUSES]
        if not active:
            return None
        names = ", ".join(str(info.get("name") or p.name) for p, info in active)
        first = str(active[0][1].get("name") or active[0][0].name)
        root_opt = "" if self.root == Path("runs") else f" --root {self.root}"
        return (
            f"{len(active)} run(s) keep running in the background: {names}.\n"
            f"Come back with: ftui watch {first}{root_opt}   (or just `ftui{root_opt}`)"
        )
