"""Asking for a learning rate: the layer tree's ``l`` (a number > 0, or cancel) and its unfreeze
(keep the rate of the module's group, which it shows, or give the module its own)."""

from __future__ import annotations

import math
from dataclasses import dataclass

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


def parse_lr(text: str) -> float | None:
    """A learning rate > 0 from what was typed, or None."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None


@dataclass(frozen=True)
class Unfreeze:
    """What the unfreeze dialog decided: ``lr`` None keeps the group's rate."""

    lr: float | None


class UnfreezeDialog(ModalScreen[Unfreeze | None]):
    """Shows the rate a frozen module would train at once unfrozen, and asks: keep it, or give one.

    Unfreezing without an lr leaves the module in its optimizer group, whose base rate may be far
    above what a pretrained layer should get (the head's rate, on a fine-tune); that is the moment to
    say so. Dismisses with :class:`Unfreeze`, or None when cancelled.
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, path: str, base: float | None, now: float | None, groups: list[str]) -> None:
        super().__init__()
        self.path = path
        self.base = base
        self.now = now
        self.groups = [g for g in groups if not g.endswith("/no_decay") or g.removesuffix("/no_decay") not in groups]

    def explanation(self) -> str:
        """What the dialog says about the rate (tests read it)."""
        where = f"group {', '.join(self.groups)}" if self.groups else "its group"
        if self.base is None:
            return (f"{self.path} would train in {where}, at a rate this run does not record. Leave the field empty "
                    "to keep it, or give the module a rate of its own.")
        now = f", {self.now:.2g} now as the schedule scales it" if self.now is not None else ""
        return (f"{self.path} would train in {where} at base lr {self.base:.2g}{now}. Keep that rate (enter), or give "
                "the module its own (pretrained layers often want 10x less).")

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="unfreeze-dialog"):
            yield Label(Text(f"Unfreeze {self.path}"), classes="dialog-title")
            yield Static(Text(self.explanation()), id="unfreeze-text")
            yield Input(value=f"{self.base:g}" if self.base is not None else "", placeholder="keep its group's rate",
                        id="unfreeze-lr")
            yield Static("", classes="dialog-error", id="unfreeze-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Unfreeze (enter)", variant="primary", id="unfreeze")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def _submit(self) -> None:
        text = self.query_one(Input).value.strip()
        if not text:
            self.dismiss(Unfreeze(None))
            return
        value = parse_lr(text)
        if value is None:
            error = self.query_one("#unfreeze-error", Static)
            error.update(Text(f"{text!r} is not a learning rate: give a number > 0, e.g. 3e-4, or leave it empty."))
            error.add_class("-shown")
            return
        # the group's own rate, unchanged: unfreeze into the group (no new group of one)
        self.dismiss(Unfreeze(None if self.base is not None and math.isclose(value, self.base, rel_tol=1e-9) else value))

    @on(Input.Submitted)
    def _entered(self) -> None:
        self._submit()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "unfreeze":
            self._submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
