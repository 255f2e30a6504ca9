"""Asks for a checkpoint path to inspect (pre-filled with the selected run's best or last)."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static


class OpenCheckpointScreen(ModalScreen[Path | None]):
    """Dismisses with an existing path, or None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, default: str = "") -> None:
        super().__init__()
        self.default = default

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Inspect a checkpoint", classes="dialog-title")
            yield Input(value=self.default, placeholder="path to a .pt / .safetensors file", id="ckpt-path")
            yield Static("", id="ckpt-error", classes="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Inspect", variant="primary", id="ckpt-ok")
                yield Button("Cancel", id="ckpt-cancel")

    @on(Input.Submitted)
    @on(Button.Pressed, "#ckpt-ok")
    def _submit(self) -> None:
        text = self.query_one("#ckpt-path", Input).value.strip()
        path = Path(text).expanduser()
        if not text or not path.exists():
            error = self.query_one("#ckpt-error", Static)
            error.update(
                f"No such file: {text or '(empty)'}. Fix: type the path of a checkpoint, "
                "e.g. runs/NAME/checkpoints/best.pt."
            )
            error.add_class("-shown")
            return
        self.dismiss(path)

    @on(Button.Pressed, "#ckpt-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
