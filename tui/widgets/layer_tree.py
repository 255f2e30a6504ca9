"""The dashboard's layer tree: steer a fine-tuning run from its modules while it trains (torch-free).

Each node is a module of ``model.json`` with its parameter count, trainable/frozen state, learning
rate and a live gradient-norm sparkline from ``layers.jsonl``. Keys send control commands through
``core.control.send`` (space freezes/unfreezes the module and its subtree, ``l`` sets its learning
rate, ``p`` pauses/resumes, ``c`` saves a checkpoint, ``V`` validates, ``s`` stops gracefully). A
sent command shows as pending on its node until the trainer's answer arrives in ``events.jsonl``
(matched by id); the new state then comes from the rewritten ``model.json``, and a refusal shows as
a notification.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static, Tree
from textual.widgets.tree import TreeNode

from core import control
from core.errors import UserError

#: Gradient norms kept per module for its sparkline.
SPARK_POINTS = 16
SPARK_CHARS = "▁▂▃▄▅▆▇█"
#: Below this a trainable module's gradient counts as vanished (shown in yellow).
VANISHING = 1e-7


class RunView(Protocol):
    """What the tree reads from the dashboard's state (``tui.run_state.RunState``)."""

    info: dict[str, Any]
    model: dict[str, Any] | None
    layers: deque[dict[str, Any]]
    layers_total: int
    events: deque[dict[str, Any]]
    events_total: int

    @property
    def active(self) -> bool: ...


@dataclass
class Pending:
    """A command sent from the tree and not answered yet."""

    path: str
    command: str
    text: str


def format_count(n: Any) -> str:
    """A parameter count in a short form: 268, 45.3K, 11.2M."""
    if not isinstance(n, (int, float)):
        return "—"
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}"
    return str(int(n))


def sparkline(values: list[float]) -> str:
    """Block characters scaled between the values' min and max (log scale: norms span decades)."""
    finite = [v for v in values if math.isfinite(v) and v > 0]
    if not finite:
        return ""
    logs = [math.log10(v) if math.isfinite(v) and v > 0 else None for v in values]
    lo, hi = math.log10(min(finite)), math.log10(max(finite))
    span = hi - lo
    out = []
    for x in logs:
        if x is None:
            out.append(" ")
        else:
            out.append(SPARK_CHARS[int((x - lo) / span * (len(SPARK_CHARS) - 1)) if span > 0 else 3])
    return "".join(out)


def aggregate_grad_norms(record: dict[str, Any]) -> dict[str, float]:
    """Grad norm of every module path and its ancestors from one ``layers.jsonl`` record (a parent's
    norm is the square root of the sum of its units' squared norms)."""
    squares: dict[str, float] = {}
    for path, stats in (record.get("layers") or {}).items():
        value = stats.get("grad_norm") if isinstance(stats, dict) else None
        if isinstance(value, str):
            value = float(value) if value in ("nan", "inf", "-inf") else None
        if not isinstance(value, (int, float)):
            continue
        parts = str(path).split(".")
        for i in range(1, len(parts) + 1):
            prefix = ".".join(parts[:i])
            squares[prefix] = squares.get(prefix, 0.0) + float(value) ** 2
    return {path: math.sqrt(sq) for path, sq in squares.items()}


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


class LayerTreeView(Tree[str]):
    """The model tree of a run, with live statistics and control keys; node data is the module path."""

    DEFAULT_CSS = """
    LayerTreeView {
        height: 1fr;
        border: round $primary 40%;
    }
    LayerTreeView:focus {
        border: round $primary;
    }
    """

    BINDINGS = [
        Binding("space", "toggle_freeze", "Freeze/unfreeze",
                tooltip="Freeze the module and its subtree, or unfreeze it."),
        Binding("l", "set_lr", "Set lr",
                tooltip="Set the learning rate of the selected module (all groups at the root)."),
        Binding("p", "toggle_pause", "Pause/resume",
                tooltip="Hold the run at its next step boundary, or let it go on."),
        Binding("c", "checkpoint", "Checkpoint", tooltip="Save checkpoints/last.pt now."),
        Binding("V", "validate", "Validate", tooltip="Run validation now."),
        Binding("s", "stop", "Stop", tooltip="Stop gracefully after this step (last.pt, status stopped)."),
        Binding("right", "expand", "Expand", show=False),
        Binding("left", "collapse", "Collapse", show=False),
    ]

    def __init__(self, run_path: Any, *, id: str | None = None) -> None:
        super().__init__("model", data="", id=id)
        self.run_path = run_path
        self.show_root = True
        self.guide_depth = 3
        self.pending: dict[str, Pending] = {}
        self.modules: dict[str, dict[str, Any]] = {}
        self.info: dict[str, Any] = {}
        self.active = False
        self.answers: list[dict[str, Any]] = []
        """Answers to this tree's commands, newest last (tests read them)."""
        self._module_nodes: dict[str, TreeNode[str]] = {}
        self._model: dict[str, Any] | None = None
        self._structure: tuple[str, ...] = ()
        self._grads: dict[str, deque[float]] = {}
        self._layers_seen = 0
        self._events_seen = 0
        self._widths = (0, 0)
        self._parents: set[str] = set()

    # ---- data ---------------------------------------------------------------------------------

    def show(self, state: RunView) -> None:
        """Bring the tree up to date with the dashboard's state (cheap when nothing changed)."""
        changed = False
        self.info, self.active = state.info, state.active
        if state.model is not None and state.model is not self._model:
            self._model = state.model
            self.modules = {str(m.get("path")): m for m in state.model.get("modules") or [] if m.get("path")}
            structure = tuple(self.modules)
            if structure != self._structure:
                self._structure = structure
                self._rebuild_nodes()
            changed = True
        changed |= self._take_layers(state)
        changed |= self._take_answers(state)
        if self.pending and not self.active:
            # a trainer that was killed answers nothing; one that ended normally answered already
            unanswered = ", ".join(p.text for p in self.pending.values())
            self.notify(f"The run is {self.info.get('status', 'gone')}; no answer to: {unanswered}.",
                        severity="warning", timeout=10, markup=False)
            self.pending.clear()
            changed = True
        if changed or not self._module_nodes:
            self._relabel()
        else:
            self._label_root()

    def _take_layers(self, state: RunView) -> bool:
        new = state.layers_total - self._layers_seen
        if new <= 0:
            return False
        self._layers_seen = state.layers_total
        for record in list(state.layers)[-min(new, SPARK_POINTS):]:
            for path, value in aggregate_grad_norms(record).items():
                self._grads.setdefault(path, deque(maxlen=SPARK_POINTS)).append(value)
        return True

    def _take_answers(self, state: RunView) -> bool:
        new = state.events_total - self._events_seen
        if new <= 0:
            return False
        self._events_seen = state.events_total
        if not self.pending:
            return False
        found = False
        for event in list(state.events)[-new:]:
            if event.get("kind") != "control" or event.get("id") not in self.pending:
                continue
            sent = self.pending.pop(str(event["id"]))
            self.answers.append(event)
            found = True
            message = str(event.get("message") or "")
            if event.get("status") == "ok":
                self.notify(f"{sent.text}: {message}", title="ok", timeout=4, markup=False)
            else:
                self.notify(f"{sent.text} refused: {message}", title="control", severity="error", timeout=10,
                            markup=False)
        return found

    # ---- drawing ------------------------------------------------------------------------------

    def _rebuild_nodes(self) -> None:
        self.clear()
        self._module_nodes = {"": self.root}
        many = len(self.modules) > 40
        self._parents = {p.rsplit(".", 1)[0] for p in self.modules if "." in p}
        for path, module in self.modules.items():
            parent_path = path.rsplit(".", 1)[0] if "." in path else ""
            parent = self._module_nodes.get(parent_path, self.root)
            if path in self._parents:
                self._module_nodes[path] = parent.add("", data=path, expand=not many and module.get("depth") == 1)
            else:
                self._module_nodes[path] = parent.add_leaf("", data=path)
        name_width = max((len(p.rsplit(".", 1)[-1]) + self._indent(p, m) for p, m in self.modules.items()), default=10)
        type_width = max((len(str(m.get("type") or "")) for m in self.modules.values()), default=6)
        self._widths = (name_width, type_width)
        self.root.expand()

    def _relabel(self) -> None:
        self._label_root()
        for path, node in self._module_nodes.items():
            if path:
                node.set_label(self._module_label(path, self.modules.get(path, {})))

    def _label_root(self) -> None:
        model = self._model or {}
        parts: list[tuple[str, str] | str] = [(str(model.get("name") or "model"), "bold")]
        if model:
            parts.append((f"  {format_count(model.get('trainable_params'))} of "
                          f"{format_count(model.get('total_params'))} params trainable", "dim"))
        if self.info.get("paused"):
            parts.append(("  ⏸ paused", "bold yellow"))
        elif not self.active and self.info:
            parts.append((f"  {self.info.get('status', '')} (read-only)", "dim"))
        mine = [p for p in self.pending.values() if not p.path]
        if mine:
            parts.append((f"  ⧗ {', '.join(p.command for p in mine)}…", "yellow"))
        elif self.pending:
            parts.append((f"  ⧗ {len(self.pending)} pending", "yellow"))
        self.root.set_label(Text.assemble(*parts))

    def _indent(self, path: str, module: dict[str, Any]) -> int:
        """Columns left of the node's label: guides per level, plus the expand arrow of a parent."""
        return self.guide_depth * int(module.get("depth") or 1) + (2 if path in self._parents else 0)

    def _module_label(self, path: str, module: dict[str, Any]) -> Text:
        name_width, type_width = self._widths
        depth = int(module.get("depth") or 1)
        name = path.rsplit(".", 1)[-1]
        params = module.get("params") or 0
        trainable = module.get("trainable") or 0
        text = Text.assemble(
            (name.ljust(max(1, name_width - self._indent(path, module))), "bold" if depth == 1 else ""),
            (f" {str(module.get('type') or ''):<{type_width}}", "italic dim"),
            (f" {format_count(params) if params else '':>7}", "dim"),
        )
        if not params:
            state = ("", "")
        elif module.get("frozen"):
            state = ("❄ frozen", "cyan")
        elif trainable < params:
            state = ("◐ partly", "yellow")
        else:
            state = ("● trains", "green")
        text.append(f"  {state[0]:<8}", style=state[1])
        lr = module.get("lr")
        text.append(f"  {('lr ' + format(lr, '.2g')) if isinstance(lr, (int, float)) else '':<9}", style="magenta")
        grads = list(self._grads.get(path, ()))
        if grads and params and not module.get("frozen"):  # a frozen module's zeros say nothing
            last = grads[-1]
            if not math.isfinite(last):
                style = "bold red"
            elif last == 0:
                style = "dim"
            elif last < VANISHING:
                style = "yellow"
            else:
                style = "green"
            text.append(f"  {sparkline(grads):<{SPARK_POINTS}}", style=style)
            text.append(f" ∇{last:.1e}" if math.isfinite(last) else f" ∇{last}", style=style)
        waiting = [p for p in self.pending.values() if p.path == path]
        if waiting:
            text.append(f"  ⧗ {waiting[-1].command}…", style="bold yellow")
        return text

    # ---- commands -----------------------------------------------------------------------------

    def send(self, command: str, args: dict[str, Any] | None = None, *, path: str = "") -> str | None:
        """Send a control command to the run and mark it pending on ``path``; returns its id."""
        if not self.active:
            self.notify(f"The run is {self.info.get('status', 'not running')}: nothing to control.", severity="warning",
                        markup=False)
            return None
        try:
            cmd = control.send(self.run_path, command, args, sender="ftui app")
        except (UserError, OSError) as exc:
            self.notify(str(exc), title=command, severity="error", markup=False)
            return None
        shown = " ".join([command, *(str(v) for v in (args or {}).values() if v is not None)])
        self.pending[cmd.id] = Pending(path, command, shown)
        self._relabel()
        return cmd.id

    def _cursor_module(self) -> tuple[str, dict[str, Any]] | None:
        node = self.cursor_node
        if node is None:
            return None
        path = node.data or ""
        return path, self.modules.get(path, {})

    def action_toggle_freeze(self) -> None:
        selected = self._cursor_module()
        if selected is None:
            return
        path, module = selected
        if not path:
            self.notify("Select a module (freezing the whole model would stop training).", severity="warning")
            return
        if not module.get("params"):
            self.notify(f"{path} has no parameters to freeze.", severity="warning", markup=False)
            return
        command = "unfreeze" if module.get("frozen") else "freeze"
        self.send(command, {"pattern": path}, path=path)

    def action_set_lr(self) -> None:
        selected = self._cursor_module()
        if selected is None:
            return
        path, module = selected
        if path and not module.get("params"):
            self.notify(f"{path} has no parameters.", severity="warning", markup=False)
            return
        target = path or "all"
        current = module.get("lr") if path else None

        def chosen(lr: float | None) -> None:
            if lr is not None:
                self.send("set-lr", {"group": target, "lr": lr}, path=path)

        self.app.push_screen(LearningRateDialog(target, current if isinstance(current, (int, float)) else None), chosen)

    def action_toggle_pause(self) -> None:
        self.send("resume" if self.info.get("paused") else "pause")

    def action_checkpoint(self) -> None:
        self.send("checkpoint")

    def action_validate(self) -> None:
        self.send("validate")

    def action_stop(self) -> None:
        from tui.screens.confirm import ConfirmScreen

        if not self.active:
            self.notify(f"The run is {self.info.get('status', 'not running')}.", severity="warning", markup=False)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.send("stop")

        name = self.info.get("name", "the run")
        self.app.push_screen(
            ConfirmScreen(f"Stop {name}?", "The trainer finishes its current step, saves checkpoints/last.pt and ends "
                          "as stopped (it can be resumed with --resume)."),
            answered,
        )

    def action_expand(self) -> None:
        if self.cursor_node is not None:
            self.cursor_node.expand()

    def action_collapse(self) -> None:
        node = self.cursor_node
        if node is None:
            return
        if node.is_expanded and node.children:
            node.collapse()
        elif node.parent is not None:
            self.move_cursor(node.parent)

    def on_show(self) -> None:
        self.focus()
