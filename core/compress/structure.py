"""Structured (channel) pruning with Torch-Pruning, and replaying it on a freshly built model.

Torch-Pruning traces the model once into a dependency graph, so removing output channels of one
convolution also removes the matching input channels of every layer that consumes them — through
BatchNorm, residual additions and concatenations — and the tensors really shrink. What was removed
is kept as Torch-Pruning's *pruning history* (root layer, out or in channels, indices): plain lists
that a checkpoint stores safely and that :func:`replay` applies to the model built from the
checkpoint's config, after which the pruned state dict loads strictly.

Invariant: ``replay(build(cfg), step)`` has exactly the tensor shapes of the model that
:func:`prune_structured` returned, for any model the dependency graph can trace.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from core.compress.deps import require
from core.errors import CompressionError

IMPORTANCE = "group L2 magnitude"


def _tp() -> Any:
    return require("torch_pruning", purpose="structured pruning (--prune with --prune-mode structured)")


def _graph(model: nn.Module, example: Any, ignored: list[nn.Module] | None = None) -> Any:
    """Torch-Pruning's dependency graph of ``model``, traced with ``example`` (RNG streams untouched)."""
    tp = _tp()
    was_training = model.training
    model.eval()  # tracing runs a forward: it must not move BatchNorm statistics or draw dropout masks
    try:
        with torch.random.fork_rng(devices=[]):
            return tp.DependencyGraph().build_dependency(
                model, example_inputs=example, ignored_layers=ignored or [], verbose=False
            )
    except Exception as exc:  # noqa: BLE001 - tracing user code fails in many ways; name it
        raise CompressionError(
            f"structured pruning: Torch-Pruning could not trace the model ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}). Fix: use --prune-mode unstructured, which "
            "needs no tracing, or make the model's forward traceable."
        ) from None
    finally:
        model.train(was_training)


def prune_structured(
    model: nn.Module, amount: float, example: Any, *, ignored: list[str]
) -> dict[str, Any]:
    """Remove ``amount`` of the channels of every prunable layer (smallest group L2 norm first), in place.

    Args:
        model: the model to prune (changed in place).
        amount: fraction of each layer's channels to remove, in (0, 1).
        example: an example input batch for tracing.
        ignored: module paths whose *output* size must stay (the classification head).

    Returns:
        The record step (see :mod:`core.compress.record`).

    Raises:
        CompressionError: the amount would remove every channel of a layer, or nothing can be pruned.
    """
    tp = _tp()
    names = {m: n for n, m in model.named_modules()}
    ignored_modules = [model.get_submodule(p) for p in ignored if p]
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=[]):
            pruner = tp.pruner.BasePruner(
                model,
                example_inputs=example,
                importance=tp.importance.GroupMagnitudeImportance(p=2),
                pruning_ratio=amount,
                ignored_layers=ignored_modules,
                global_pruning=False,
            )
    except Exception as exc:  # noqa: BLE001
        raise CompressionError(
            f"--prune {amount}: Torch-Pruning could not trace the model ({type(exc).__name__}: {exc}). "
            "Fix: use --prune-mode unstructured, which needs no tracing."
        ) from None
    finally:
        model.train(was_training)
    graph = pruner.DG
    kept: dict[tuple[str, str], list[int]] = {}
    sizes: dict[tuple[str, str], int] = {}
    types: dict[str, str] = {}
    _refuse_emptying(pruner, names, amount)
    for group in pruner.step(interactive=True):
        for dep, idxs in group:
            module = dep.target.module
            if not isinstance(module, nn.Module) or module not in names or not _has_tensors(module):
                continue
            out = graph.is_out_channel_pruning_fn(dep.handler)
            if not out and not graph.is_in_channel_pruning_fn(dep.handler):
                continue
            key = (names[module], "out" if out else "in")
            if key not in kept:
                size = graph.get_out_channels(module) if out else graph.get_in_channels(module)
                if size is None:
                    continue
                kept[key] = list(range(int(size)))
                sizes[key] = int(size)
                types[names[module]] = type(module).__name__
            gone = {int(i) for i in idxs}
            kept[key] = [c for pos, c in enumerate(kept[key]) if pos not in gone]
        group.prune()
    history = [[str(name), bool(is_out), [int(i) for i in idxs]] for name, is_out, idxs in pruner.pruning_history()]
    if not history:
        raise CompressionError(
            f"--prune {amount}: no layer of this model can lose channels at this amount (every group is "
            "ignored or too small). Fix: raise --prune, or use --prune-mode unstructured."
        )
    layers = []
    order = {name: i for i, name in enumerate(names.values())}
    for (module, dim), channels in sorted(kept.items(), key=lambda kv: (order.get(kv[0][0], 0), kv[0][1] != "out")):
        before = sizes[(module, dim)]
        layers.append({
            "module": module, "type": types[module], "dim": dim, "before": before, "after": len(channels),
            "removed": sorted(set(range(before)) - set(channels)),
        })
    return {
        "kind": "prune",
        "method": "structured",
        "amount": float(amount),
        "library": f"torch-pruning {_version(tp)}",
        "importance": IMPORTANCE,
        "ignored": list(ignored),
        "history": history,
        "layers": layers,
    }


def _has_tensors(module: nn.Module) -> bool:
    return any(True for _ in module.parameters(recurse=False)) or any(True for _ in module.buffers(recurse=False))


def _refuse_emptying(pruner: Any, names: dict[nn.Module, str], amount: float) -> None:
    """Refuse an amount that leaves some layer without a single output channel (Torch-Pruning would
    silently skip that layer instead)."""
    graph = pruner.DG
    order = {module: i for i, module in enumerate(names)}
    offenders = []
    for group in graph.get_all_groups(ignored_layers=pruner.ignored_layers, root_module_types=pruner.root_module_types):
        module = group[0].dep.target.module
        size = graph.get_out_channels(module)
        if size is not None and int(size) > 1 and int(int(size) * (1 - amount)) < 1:
            offenders.append((int(size), order.get(module, 0), module))
    if offenders:
        size, _, module = min(offenders, key=lambda o: (o[0], o[1]))
        raise CompressionError(
            f"--prune {amount}: would remove every one of the {size} output channels of "
            f"{names.get(module, type(module).__name__)} ({type(module).__name__}). Fix: use an amount below "
            f"{1 - 1 / size:.3f} (each layer keeps int(channels x (1 - amount)) channels, and needs at least one)."
        )


def _version(module: Any) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("torch-pruning")
    except PackageNotFoundError:
        return str(getattr(module, "__version__", "?"))


def replay(model: nn.Module, step_or_record: dict[str, Any], example: Any) -> None:
    """Apply the structured pruning recorded in a checkpoint to ``model`` (built from the same config).

    Raises:
        CompressionError: the history names layers this model does not have (another architecture).
    """
    from core.compress.record import structural

    record = step_or_record if "steps" in step_or_record else {"steps": [step_or_record]}
    found = structural(record)
    if found is None:
        return
    for step in found["steps"]:
        history = step.get("history") or []
        missing = [h[0] for h in history if not _has_module(model, str(h[0]))]
        if missing:
            raise CompressionError(
                f"the checkpoint's pruning record names layers this model does not have ({', '.join(missing[:4])}). "
                "Fix: rebuild with the checkpoint's own config (leave --config out)."
            )
        graph = _graph(model, example)
        try:
            graph.load_pruning_history([[str(n), bool(o), [int(i) for i in idxs]] for n, o, idxs in history])
        except Exception as exc:  # noqa: BLE001
            raise CompressionError(
                f"the checkpoint's pruning record does not apply to this model ({type(exc).__name__}: {exc}). "
                "Fix: rebuild with the checkpoint's own config (leave --config out)."
            ) from None


def _has_module(model: nn.Module, path: str) -> bool:
    try:
        model.get_submodule(path)
    except AttributeError:
        return False
    return True


def example_input(input_shape: tuple[int, ...], batch: int = 1) -> torch.Tensor:
    """A zero batch of the model's input shape, for tracing."""
    return torch.zeros((batch, *[int(s) for s in input_shape]))
