"""Asking for a learning rate (the layer tree's ``l``): a number > 0, or cancel."""

from __future__ import annotations

import math

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static


class LearningRateDialog(ModalScreen[float | None]):
    """Asks for a learning rate > 0; dismisses with it, or None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, target: str, current: float | None) -> None:
        super().__init__()
        self.target = target
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="lr-dialog"):
            yield Label(Text(f"Learning rate of {self.target}"), classes="dialog-title")
            yield Static("The schedule keeps scaling it; `set-lr` is sent to the trainer, which answers "
                         "at its next step.")
            yield Input(value=f"{self.current:g}" if self.current else "", placeholder="e.g. 0.001", id="lr-input")
            yield Static("", classes="dialog-error", id="lr-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Set (enter)", variant="primary", id="set")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def _submit(self) -> None:
        text = self.query_one(Input).value.strip()
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not math.isfinite(value) or value <= 0:
            error = self.query_one("#lr-error", Static)
            error.update(Text(f"{text!r} is not a learning rate: give a number > 0, e.g. 3e-4."))
            error.add_class("-shown")
            return
        self.dismiss(value)

    @on(Input.Submitted)
    def _entered(self) -> None:
        self._submit()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "set":
            self._submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
