"""The form that starts a run: config, name and ``--set``-style overrides; errors shown in place."""

from __future__ import annotations

import shlex
from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from core.errors import UserError
from core.launch import launch_detached
from tui.widgets.config_list import display_path


def parse_overrides(text: str) -> list[str]:
    """``key=value`` items from what was typed: shell-style words, ``--set``/``-s`` allowed and dropped.

    Raises:
        UserError: unbalanced quotes, or a word without ``=``.
    """
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise UserError(f"Overrides: {exc}. Fix: close the quote, e.g. run.notes='two words'.") from None
    items: list[str] = []
    for word in words:
        if word in ("--set", "-s"):
            continue
        if word.startswith("--set="):
            word = word[len("--set=") :]
        if "=" not in word or word.startswith("="):
            raise UserError(
                f"Overrides: {word!r} is not KEY=VALUE. Fix: write dotted keys with values, "
                "e.g. trainer.epochs=2 optim.lr=0.01."
            )
        items.append(word)
    return items


class StartRunScreen(ModalScreen[Path | None]):
    """Dismisses with the new run directory, or None when cancelled."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "start", "Start"),
    ]

    def __init__(self, configs: list[Path], selected: Path | None, root: Path) -> None:
        super().__init__()
        self.configs = configs
        self.selected = selected if selected is not None else (configs[0] if configs else None)
        self.root = Path(root)

    def compose(self) -> ComposeResult:
        with Vertical(id="start-dialog", classes="dialog"):
            yield Label("Start a run", classes="dialog-title")
            yield Select(
                [(display_path(p), str(p)) for p in self.configs],
                value=str(self.selected) if self.selected else Select.NULL,
                prompt="config file",
                id="start-config",
            )
            yield Input(placeholder="name (default: the config's run.name)", id="start-name")
            yield Input(placeholder="e.g. trainer.epochs=2 optim.lr=0.01", id="start-overrides")
            yield Static("", id="start-error", classes="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Start", variant="primary", id="start-ok")
                yield Button("Cancel", id="start-cancel")

    def on_mount(self) -> None:
        # Titles in the borders label the fields without costing rows at 80x24.
        self.query_one("#start-config").border_title = "config"
        self.query_one("#start-name").border_title = "name"
        self.query_one("#start-overrides").border_title = "overrides (--set style, space-separated)"
        # The first field that needs an answer: the config when none was picked in the list, else the
        # name; Tab then runs down the form (name, overrides, Start, Cancel) and Enter in a field starts.
        self.query_one("#start-name" if self.selected else "#start-config").focus()

    @on(Button.Pressed, "#start-ok")
    @on(Input.Submitted)
    def action_start(self) -> None:
        error = self.query_one("#start-error", Static)
        value = self.query_one("#start-config", Select).value
        if value is Select.NULL or not value:
            self._show_error("Choose a config file first.")
            return
        name = self.query_one("#start-name", Input).value.strip()
        try:
            overrides = parse_overrides(self.query_one("#start-overrides", Input).value)
            if name:
                # As an override, so a bad name is reported like any other config error.
                overrides.append(f"run.name={name}")
            path = launch_detached(Path(str(value)), overrides, root=self.root)
        except UserError as exc:
            self._show_error(str(exc))
            return
        except OSError as exc:
            self._show_error(f"Could not start the run: {exc}")
            return
        error.update("")
        self.dismiss(path)

    def _show_error(self, message: str) -> None:
        error = self.query_one("#start-error", Static)
        error.update(message)
        error.add_class("-shown")

    @on(Button.Pressed, "#start-cancel")
    def action_cancel(self) -> None:
        self.notify("No run was started.", timeout=3)
        self.dismiss(None)
