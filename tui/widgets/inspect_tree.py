"""The layer tree of a checkpoint: modules with parameter counts and frozen flags, tensors as leaves."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.message import Message
from textual.widgets import Tree

from tui.format import format_count


def _frozen_mark(flag: Any) -> Text:
    if flag is True:
        return Text(" ❄ frozen", style="cyan")
    if flag == "partial":
        return Text(" ◐ partly frozen", style="yellow")
    return Text("")


class LayerTree(Tree[dict]):
    """Module tree built from a summary's ``modules`` and ``tensors``; selecting a tensor posts
    :class:`LayerTree.TensorChosen`."""

    DEFAULT_CSS = """
    LayerTree {
        height: 1fr;
        width: 2fr;
        border: round $primary 40%;
    }
    LayerTree:focus {
        border: round $primary;
    }
    """

    class TensorChosen(Message):
        """The user selected a tensor leaf (enter or click)."""

        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("weights", id=id)
        self.show_root = True
        self.guide_depth = 3

    def populate(self, summary: dict[str, Any]) -> None:
        """Build the tree from a checkpoint summary (replaces any previous content)."""
        self.clear()
        weights = summary.get("weights") or {}
        self.root.set_label(Text.assemble(("weights ", "bold"), (f"{format_count(weights.get('params'), '-')} params, "
                                                                  f"{weights.get('count', 0)} tensors", "dim")))
        self.root.data = None
        modules = {m["path"]: m for m in summary.get("modules") or []}
        nodes: dict[str, Any] = {"": self.root}
        for tensor in summary.get("tensors") or []:
            parts = tensor["name"].split(".")
            for depth in range(1, len(parts)):
                path = ".".join(parts[:depth])
                if path not in nodes:
                    info = modules.get(path, {})
                    label = Text.assemble(
                        (parts[depth - 1], "bold"),
                        (f"  {info.get('type')}" if info.get("type") else "", "italic"),
                        (f"  {format_count(info.get('params'), '-')}", "dim"),
                        _frozen_mark(info.get("frozen")),
                    )
                    parent = nodes[".".join(parts[: depth - 1])]
                    nodes[path] = parent.add(label, data={"module": path}, expand=depth == 1 and len(modules) < 40)
            shape = "×".join(map(str, tensor["shape"])) or "scalar"
            label = Text.assemble((parts[-1], ""), (f"  {shape}", "cyan"), (f"  {tensor['dtype']}", "dim"),
                                  _frozen_mark(tensor.get("frozen")))
            nodes[".".join(parts[:-1])].add_leaf(label, data={"tensor": tensor["name"]})
        self.root.expand()

    def on_tree_node_selected(self, event: Tree.NodeSelected) -> None:
        data = event.node.data
        if isinstance(data, dict) and "tensor" in data:
            event.stop()
            self.post_message(self.TensorChosen(data["tensor"]))
