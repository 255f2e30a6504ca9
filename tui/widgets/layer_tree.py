"""The dashboard's layer tree: steer a fine-tuning run from its modules while it trains (torch-free).

Each node is a module of ``model.json`` with its parameter count, trainable/frozen state, learning
rate and a live gradient-norm sparkline from ``layers.jsonl``. The rate shown is the one the module
trains at now — its optimizer groups' entry in the newest train row's ``lrs`` — and ``b`` switches to
the base rates the schedule scales. Space freezes the module and its subtree through the dashboard's
:class:`~tui.run_control.RunControl`; on a frozen module it asks the screen
(:class:`LayerTreeView.UnfreezeWanted`), which shows the rate the module would train at before it
unfreezes; ``l`` asks the screen for a learning rate (:class:`LayerTreeView.LearningRateWanted`). The run-wide keys — pause, checkpoint,
validate, stop — are the dashboard's, in every tab. A command shows as pending on its node (or on the
root, for the run) until the trainer's answer arrives in ``events.jsonl``; the new state then comes
from the rewritten ``model.json``.

A LoRA adapter is a node ``lora`` (type ``LoRA r=R α=A``) under its layer; keys on it address the
adapter only (``freeze lora:X``, ``set-lr lora:X``), and the layer's ``base_layer`` node is the frozen
base weight beside it (space unfreezes it). The root shows the trainable share of the parameters.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from core.errors import UserError
from tui.format import format_count, sparkline
from tui.run_control import RunControl
from tui.run_text import trainable_share

#: Gradient norms kept per module for its sparkline.
SPARK_POINTS = 16
#: The type column's width: longer class names (NonDynamicallyQuantizableLinear) are cut, so the
#: statistics of a deep tree still fit 120 columns.
TYPE_WIDTH = 20
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

    def group_lrs(self) -> dict[str, float]: ...


def rate_now(groups: Any, lrs: dict[str, float]) -> float | None:
    """The one learning rate ``groups`` (a module's optimizer groups) have in a train row's ``lrs``; None
    when that row does not name them all, or they differ."""
    if not isinstance(groups, list) or not groups or not all(g in lrs for g in groups):
        return None
    rates = {lrs[g] for g in groups}
    return rates.pop() if len(rates) == 1 else None


def lr_text(module: dict[str, Any], lrs: dict[str, float], *, base: bool) -> str:
    """The lr column of a module: the rate its trainable parameters train at now (base lr × the
    schedule's factor, from the newest train row), or with ``base`` the base lr the schedule scales.
    ``base`` is also what shows while no train row says the rate yet."""
    base_lr = module.get("lr")
    if not isinstance(base_lr, (int, float)):
        return ""
    now = rate_now(module.get("groups"), lrs)
    if base or now is None:
        return f"base {base_lr:.2g}"
    return f"lr {now:.2g}"


def type_text(module: dict[str, Any]) -> str:
    """The type column: the module's class, ``LoRA r=8 α=16`` for an adapter node."""
    adapter = module.get("adapter")
    if isinstance(adapter, dict):
        alpha = adapter.get("alpha")
        alpha_text = f" α={alpha:g}" if isinstance(alpha, (int, float)) else ""
        return f"LoRA r={adapter.get('rank')}{alpha_text}"
    return str(module.get("type") or "")


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def pattern_of(path: str, module: dict[str, Any]) -> str:
    """What a control command names to address a node: its path, or its own pattern (``lora:X``)."""
    pattern = module.get("pattern")
    return str(pattern) if isinstance(pattern, str) and pattern else path


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
        Binding("b", "toggle_base", "Base lr", show=False,
                tooltip="Show each module's base learning rate (what the schedule scales) or the rate it trains at now."),
        Binding("right", "expand", "Expand", show=False),
        Binding("left", "collapse", "Collapse", show=False),
    ]

    @dataclass
    class LearningRateWanted(Message):
        """``l`` on a module: the screen asks for the rate and sends ``set-lr`` (``target``, at ``path``)."""

        tree: LayerTreeView
        path: str
        target: str
        current: float | None

    @dataclass
    class UnfreezeWanted(Message):
        """Space on a frozen module: the screen shows the rate it would train at and asks."""

        tree: LayerTreeView
        path: str
        pattern: str
        """What the command names (the path, or an adapter node's own pattern)."""
        base: float | None
        """The base lr of its group(s), which unfreezing without an lr keeps."""
        now: float | None
        """That group's rate at the newest train row (base × the schedule's factor)."""
        groups: list[str]

    def __init__(self, control: RunControl, *, id: str | None = None) -> None:
        super().__init__("model", data="", id=id)
        self.control = control
        self.show_root = True
        self.guide_depth = 3
        self.modules: dict[str, dict[str, Any]] = {}
        self.info: dict[str, Any] = {}
        self.active = False
        self._module_nodes: dict[str, TreeNode[str]] = {}
        self._model: dict[str, Any] | None = None
        self._structure: tuple[str, ...] = ()
        self._grads: dict[str, deque[float]] = {}
        self._layers_seen = 0
        self._widths = (0, 0)
        self._parents: set[str] = set()
        self.lrs: dict[str, float] = {}
        """Every optimizer group's rate at the newest train row."""
        self.show_base = False
        """Show base learning rates instead of the current ones (``b``)."""

    @property
    def pending(self) -> dict[str, Any]:
        """Commands sent to the run and not answered yet (the tree's and the dashboard's)."""
        return self.control.pending

    @property
    def answers(self) -> list[dict[str, Any]]:
        """Answers to the commands sent from this dashboard, newest last."""
        return self.control.answers

    # ---- data ---------------------------------------------------------------------------------

    def show(self, state: RunView, *, answered: bool = False) -> None:
        """Bring the tree up to date with the dashboard's state (cheap when nothing changed);
        ``answered``: commands were answered or abandoned since the last call."""
        changed = answered
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
        lrs = state.group_lrs()
        if lrs != self.lrs:
            self.lrs, changed = lrs, True
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
        type_width = min(TYPE_WIDTH, max((len(type_text(m)) for m in self.modules.values()), default=6))
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
        # whether the tree can be steered comes first: at 80 columns the line's end is cut
        if self.info.get("paused"):
            parts.append(("  ⏸ paused", "bold yellow"))
        elif not self.active and self.info:
            parts.append((f"  {self.info.get('status', '')} (read-only)", "dim"))
        if model:
            share = trainable_share(model)
            parts.append((f"  {format_count(model.get('trainable_params'))} of "
                          f"{format_count(model.get('total_params'))} params trainable"
                          + (f" ({share})" if share else ""), "dim"))
            lora = model.get("lora")
            if isinstance(lora, dict):
                rank = f" r={lora['rank']}" if lora.get("rank") is not None else ""
                parts.append((f"  LoRA{rank}: {lora.get('layers')} adapters, {format_count(lora.get('params'))} params",
                              "magenta"))
            parts.append(("  base lr (b: now)" if self.show_base else "  lr now (b: base)", "magenta"))
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
        adapter = isinstance(module.get("adapter"), dict)
        text = Text.assemble(
            (name.ljust(max(1, name_width - self._indent(path, module))),
             "bold magenta" if adapter else ("bold" if depth == 1 else "")),
            (f" {_fit(type_text(module), type_width):<{type_width}}", "magenta" if adapter else "italic dim"),
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
        text.append(f"  {lr_text(module, self.lrs, base=self.show_base):<12}", style="magenta")
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
            text.append(f"  {sparkline(grads, log=True):<{SPARK_POINTS}}", style=style)
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
            sent = self.control.send(command, args, path=path)
        except (UserError, OSError) as exc:
            self.notify(str(exc), title=command, severity="error", markup=False)
            return None
        self._relabel()
        return sent.id

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
        pattern = pattern_of(path, module)
        if not module.get("frozen"):
            self.send("freeze", {"pattern": pattern}, path=path)
            return
        # which rate it would train at is the question an unfreeze raises: show it, and ask
        groups = module.get("frozen_groups") if isinstance(module.get("frozen_groups"), list) else []
        base = module.get("frozen_lr")
        self.post_message(self.UnfreezeWanted(self, path, pattern, base if isinstance(base, (int, float)) else None,
                                              rate_now(groups, self.lrs), list(groups)))

    def action_set_lr(self) -> None:
        selected = self._cursor_module()
        if selected is None:
            return
        path, module = selected
        if path and not module.get("params"):
            self.notify(f"{path} has no parameters.", severity="warning", markup=False)
            return
        current = module.get("lr") if path else None
        self.post_message(self.LearningRateWanted(self, path, pattern_of(path, module) if path else "all",
                                                  current if isinstance(current, (int, float)) else None))

    def reveal(self, path: str) -> bool:
        """Expand the ancestors of module ``path`` (an adapter node ``X.lora`` too) and put the cursor
        on it; False when the tree has no such node."""
        node = self._module_nodes.get(path)
        if node is None:
            return False
        parent = node.parent
        while parent is not None:
            parent.expand()
            parent = parent.parent
        self.call_after_refresh(self.move_cursor, node)  # the node has its line once the expanded tree is laid out
        return True

    def action_toggle_base(self) -> None:
        self.show_base = not self.show_base
        self._relabel()

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
