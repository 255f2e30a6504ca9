"""``ftui model show`` (layer tree with totals, like torchinfo) and ``ftui model graph`` (Mermaid).

Both build the config's model on the CPU exactly as training would (data shape and class count,
head surgery, LoRA adapters, fine-tuning freeze and learning rates) and describe it through
``core.models.model_tree``. torch is imported only inside the functions.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.text import Text

from core.errors import UserError
from core.richtext import PlainTable, plain


def describe(config: Path, overrides: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Build the config's model and return its layer tree and the notes on how it was built.

    The data is read only when the config alone does not say its classes and input shape
    (``core.data.facts``): showing a model must not need the dataset on disk.
    """
    import torch

    from core.config import load_config

    from core.data import build_data
    from core.data.facts import known_facts
    from core.finetune import FineTuner
    from core.models import build_model, model_tree
    from core.models.forward import check_forward
    from core.usercode import is_code_name

    cfg = load_config(config, overrides)
    known = known_facts(cfg.data) if not is_code_name(cfg.model.name) else None
    if known is not None:
        # the model's shape needs the data's classes and input shape, not the data: none is read
        num_classes, input_shape, facts = known.num_classes, known.input_shape, None
        example = torch.zeros((2, *input_shape))
    else:
        from core.data import build_data

        data = build_data(cfg.data, cfg.run.seed)
        num_classes, input_shape, facts = data.num_classes, data.input_shape, data.facts()
        example = data.example("val", 2)
    model_cfg, weights_note = _model_config_to_show(cfg.model)
    built = build_model(model_cfg, num_classes, input_shape, head_dropout=cfg.finetune.head_dropout, facts=facts)
    check_forward(built.model, example, num_classes, label=built.name)
    if cfg.finetune.lora is not None:
        from core.lora.adapters import apply_lora

        apply_lora(built.model, cfg.finetune.lora, built.head_path)  # the adapters as training has them
    tuner = FineTuner(built.model, cfg.finetune, cfg.optim, built.head_path)
    tuner.setup()
    tree = model_tree(built.model, input_shape, built.head_path, lrs=tuner.param_lrs(), name=built.name,
                      example=example, groups=tuner.param_groups())
    notes = list(built.notes)
    if built.load_report is not None:
        notes.append(built.load_report.summary())
    if weights_note:
        notes.append(weights_note)
    return tree, notes


def _model_config_to_show(model_cfg: Any) -> tuple[Any, str | None]:
    """The model config to build for a description: pretrained torchvision weights that are not on this
    machine are left out (they change no shape), with a note saying so and how training gets them."""
    from core.errors import ModelError
    from core.models.weights import is_weights_path, torchvision_weights

    if not model_cfg.weights or is_weights_path(model_cfg.weights):
        return model_cfg, None  # a weights file can change the model (a pruned checkpoint): it is read
    try:
        torchvision_weights(model_cfg.name, model_cfg.weights)
    except ModelError as exc:
        return model_cfg.model_copy(update={"weights": None}), f"shown without its pretrained weights: {exc}"
    return model_cfg, None


def show(config: Path, *, depth: int, overrides: list[str]) -> None:
    """Print the layer tree."""
    tree, notes = describe(config, overrides)
    Console(emoji=False, highlight=False).print(render_tree(tree, depth=depth, notes=notes))


def graph(config: Path, *, format_: str, depth: int, overrides: list[str]) -> None:
    """Print a Mermaid graph."""
    if format_ != "mermaid":
        raise UserError(f"--format: '{format_}' is not supported; use --format mermaid.")
    tree, _ = describe(config, overrides)
    print(mermaid(tree, depth=depth), end="")


# ---------------------------------------------------------------------------------------------
# Rendering (pure functions of the tree dict, tested on their own)
# ---------------------------------------------------------------------------------------------


def _shape_text(shape: Any) -> str:
    if shape is None:
        return "-"
    if shape and all(isinstance(s, int) for s in shape):
        return "×".join(str(s) for s in shape)
    if shape == []:
        return "scalar"
    if isinstance(shape, dict):
        return ", ".join(f"{k} {_shape_text(v)}" for k, v in shape.items())
    return str(shape)


def _children(modules: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    kids: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for module in modules:
        kids[module["path"].rpartition(".")[0]].append(module)
    return kids


def render_tree(tree: dict[str, Any], *, depth: int = 2, notes: list[str] | None = None) -> RenderableType:
    """The layer tree as a Rich table with tree guides, down to ``depth``, and a totals footer.

    Rows deeper than ``depth`` are folded into their ancestors' counts; frozen rows are dimmed and
    the head is marked.
    """
    table = PlainTable(
        title=plain(f"{tree['name']}  ·  input {_shape_text(tree['input_shape'])}", "table.title"),
        title_justify="left",
        show_edge=False,
        header_style="bold",
        pad_edge=False,
    )
    table.add_column("Layer (type)", no_wrap=True)
    table.add_column("Output shape", no_wrap=True)
    table.add_column("Params", justify="right")
    table.add_column("Trainable", justify="right")
    table.add_column("LR", justify="right")
    kids = _children(tree["modules"])

    def add(parent: str, prefix: str) -> None:
        children = kids.get(parent, [])
        for i, module in enumerate(children):
            last = i == len(children) - 1
            label = Text(prefix + ("└─ " if last else "├─ "), style="dim")
            label.append(module["path"].rpartition(".")[2], style="bold" if module["depth"] == 1 else "")
            adapter = module.get("adapter")
            if isinstance(adapter, dict):
                label.append(f" (LoRA r={adapter.get('rank')} α={adapter.get('alpha')})", style="magenta")
            else:
                label.append(f" ({module['type']})", style="cyan")
            if module["is_head"]:
                label.append("  ◀ head", style="bold yellow")
            style = "dim" if module["frozen"] else ""
            trainable = "frozen" if module["frozen"] else (f"{module['trainable']:,}" if module["params"] else "")
            table.add_row(
                label,
                _shape_text(module["output_shape"]),
                f"{module['params']:,}" if module["params"] else "-",
                trainable,
                f"{module['lr']:.2g}" if module["lr"] is not None else "",
                style=style,
            )
            if module["depth"] < depth:
                add(module["path"], prefix + ("   " if last else "│  "))

    add("", "")
    total, trainable = tree["total_params"], tree["trainable_params"]
    head = next((m for m in tree["modules"] if m["is_head"]), None)
    footer = Text()
    footer.append(f"Total params: {total:,}\n", style="bold")
    footer.append(f"Trainable params: {trainable:,}\n")
    footer.append(f"Frozen params: {total - trainable:,}\n")
    lora = tree.get("lora")
    if isinstance(lora, dict):
        footer.append(f"LoRA: {lora.get('layers')} adapters, rank {lora.get('rank')}, alpha {lora.get('alpha')}, "
                      f"{lora.get('params'):,} params ({100 * trainable / max(total, 1):.2g} % of all params train)\n",
                      style="magenta")
    footer.append(f"Params size (fp32): {total * 4 / 1e6:.2f} MB\n")
    if head is not None:
        footer.append(f"Head: {head['path']} ({head['type']}, output {_shape_text(head['output_shape'])})\n")
    for note in notes or []:
        footer.append(f"· {note}\n", style="dim")
    if tree.get("forward_error"):
        footer.append(f"Output shapes unavailable: {tree['forward_error']}\n", style="red")
    return Group(table, Text(""), footer)


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;")


def mermaid(tree: dict[str, Any], *, depth: int = 1) -> str:
    """A Mermaid flowchart of the modules down to ``depth``, in forward (call) order.

    At depth >= 2 the children of each top-level module are drawn inside a subgraph named after it.
    The head is highlighted and frozen modules are greyed.
    """
    modules = tree["modules"]
    kids = _children(modules)
    nodes = [m for m in modules if m["depth"] == depth or (m["depth"] < depth and not kids.get(m["path"]))]
    if any(m["order"] is not None for m in nodes):
        nodes = sorted((m for m in nodes if m["order"] is not None), key=lambda m: m["order"])
    ids = {m["path"]: f"n{i}" for i, m in enumerate(nodes)}
    lines = ["flowchart TD", f'    input(["input {_shape_text(tree["input_shape"])}"])']
    top = {m["path"]: m for m in modules if m["depth"] == 1}
    current_group: str | None = None
    for module in nodes:
        group = module["path"].split(".", 1)[0] if module["depth"] > 1 else None
        if group != current_group:
            if current_group is not None:
                lines.append("    end")
            if group is not None:
                lines.append(f'    subgraph g_{ids[module["path"]]} ["{_mermaid_text(group)} · {top[group]["type"]}"]')
            current_group = group
        params = f" · {module['params']:,} params" if module["params"] else ""
        label = f"{module['path']}<br/>{module['type']} → {_shape_text(module['output_shape'])}{params}"
        lines.append(f'    {"    " if group else ""}{ids[module["path"]]}["{_mermaid_text(label)}"]')
    if current_group is not None:
        lines.append("    end")
    chain = ["input", *(ids[m["path"]] for m in nodes)]
    lines += [f"    {a} --> {b}" for a, b in zip(chain, chain[1:])]
    lines.append("    classDef head fill:#fde68a,stroke:#b45309,stroke-width:2px")
    lines.append("    classDef frozen fill:#e5e7eb,stroke:#9ca3af,color:#6b7280")
    head = [ids[m["path"]] for m in nodes if m["is_head"] or tree["head"].startswith(m["path"] + ".")]
    frozen = [ids[m["path"]] for m in nodes if m["frozen"]]
    if head:
        lines.append(f"    class {','.join(head)} head")
    if frozen:
        lines.append(f"    class {','.join(frozen)} frozen")
    return "\n".join(lines) + "\n"
