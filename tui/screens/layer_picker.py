"""Pick the layer Grad-CAM and activations look at (a list of the model's spatial layers)."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option


class LayerPickerScreen(ModalScreen[str | None]):
    """Dismisses with a layer path, or None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, layers: list[str], labels: list[str], current: str | None, default: str | None) -> None:
        super().__init__()
        self.layer_paths, self.layer_labels, self.current, self.default = layers, labels, current, default

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Layer for Grad-CAM and activations (enter picks, escape cancels)", classes="dialog-title")
            options = []
            for path, label in zip(self.layer_paths, self.layer_labels):
                mark = "  (default)" if path == self.default else ""
                options.append(Option(label + mark, id=path))
            yield OptionList(*options, id="layer-options")

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        if self.current in self.layer_paths:
            options.highlighted = self.layer_paths.index(self.current)
        options.focus()

    @on(OptionList.OptionSelected)
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
