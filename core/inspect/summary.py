"""The summary of a checkpoint: one JSON-safe dict that the plain, JSON and app views all render.

It is built from shapes and dtypes only — no tensor data is read — so it stays cheap for large,
memory-mapped files. Keys are documented in ``docs/inspect.md``; bump :data:`SUMMARY_SCHEMA` when
one changes meaning.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from core.inspect.arch import guess_architecture
from core.inspect.jsonable import as_number, to_jsonable
from core.inspect.loading import LoadedCheckpoint
from core.inspect.tensors import TensorInfo

SUMMARY_SCHEMA = 1
# Buffers of normalisation layers: tensors in a state dict that are not parameters.
BUFFER_NAMES = ("running_mean", "running_var", "num_batches_tracked")
_FTUI_KEYS = {"format", "ftui_version", "model", "optimizer", "scheduler", "scaler", "epoch", "step", "rng",
              "config", "data", "finetune", "metrics", "model_tree", "batch_idx", "callbacks", "run", "world_size",
              "code", "compression", "onnx", "lora"}
_LIGHTNING_KEYS = {"state_dict", "epoch", "global_step", "pytorch-lightning_version", "optimizer_states",
                   "lr_schedulers", "callbacks", "hyper_parameters", "loops", "hparams_name"}


def summarize(ckpt: LoadedCheckpoint) -> dict[str, Any]:
    """Describe a loaded checkpoint without reading tensor data."""
    raw = ckpt.raw or {}
    infos = ckpt.weights.infos()
    by_name = {i.name: i for i in infos}
    tree = raw.get("model_tree") if isinstance(raw.get("model_tree"), dict) else None
    finetune = raw.get("finetune") if isinstance(raw.get("finetune"), dict) else None
    frozen_of = _frozen_lookup(tree, finetune)
    lightning = ckpt.format == "lightning"
    config = raw.get("config") if isinstance(raw.get("config"), dict) else None
    summary: dict[str, Any] = {
        "schema": SUMMARY_SCHEMA,
        "path": str(ckpt.path),
        "format": ckpt.format,
        "container": ckpt.container,
        "files": [str(p) for p in ckpt.files],
        "file_size": ckpt.file_size,
        "created": ckpt.created,
        "unsafe": ckpt.unsafe,
        "weights_key": ckpt.weights_key,
        "ftui_version": _str_or_none(raw.get("ftui_version") or ckpt.metadata.get("ftui_version")),
        "architecture": _architecture(ckpt, raw, tree, config, by_name),
        "epoch": as_number(raw.get("epoch")),
        "step": as_number(raw.get("global_step") if lightning else raw.get("step")),
        "best": _best(raw, lightning),
        "weights": _weights_totals(infos),
        # a buffer (BatchNorm statistics, counters) is neither trained nor frozen: the optimizer never sees it
        "tensors": [dict(i.as_dict(), buffer=is_buffer(i.name), frozen=None if is_buffer(i.name) else frozen_of(i.name))
                    for i in infos],
        "modules": _modules(infos, tree, frozen_of),
        "optimizer": _optimizer(raw, config, lightning),
        "scheduler": _scheduler(raw, lightning),
        "data": _data(ckpt, raw),
        "finetune": to_jsonable(finetune) if finetune is not None else None,
        "metrics": _metrics(raw),
        "config": to_jsonable(config) if config is not None else None,
        "code": _code(raw),
        "lora": lora_summary(raw),
        "lightning": _lightning(raw) if lightning else None,
        "metadata": dict(ckpt.metadata) or None,
        "compression": compression_summary(raw),
        "other_keys": _other_keys(raw, ckpt),
    }
    return summary


def _code(raw: dict) -> list[dict[str, Any]] | None:
    """What built the model and data when it was the user's code or timm (``checkpoint["code"]``).

    Only the record is read: the files it names are never imported here.
    """
    code = raw.get("code")
    if not isinstance(code, dict) or not code:
        return None
    out = []
    for role in ("model", "data", "collate"):
        entry = code.get(role)
        if isinstance(entry, dict):
            out.append({"role": role, **to_jsonable(entry)})
    return out or None


def compression_summary(raw: dict) -> dict[str, Any] | None:
    """What ``ftui compress`` did to make this checkpoint (its ``compression`` record), or None."""
    from core.compress import record as rec

    record = raw.get(rec.RECORD_KEY)
    if not isinstance(record, dict):
        return None
    blob = raw.get(rec.ONNX_KEY)
    quant = rec.quantized(record) or {}
    return {
        "variant": _str_or_none(record.get("variant")),
        "source": _str_or_none(record.get("source")),
        "steps": [rec.describe_step(s) for s in rec.steps(record)],
        "kinds": [str(s.get("kind")) for s in rec.steps(record)],
        "channels": to_jsonable(rec.channel_changes(record)),
        "float_layers": to_jsonable(quant.get("float_layers") or []),
        "int8_model_bytes": blob.numel() * blob.element_size() if hasattr(blob, "numel") else None,
    }


def lora_summary(raw: dict) -> dict[str, Any] | None:
    """The LoRA record of an ftui checkpoint (``checkpoint["lora"]``): the adapter config, the adapted
    layers, their sizes, and the base weights file the checkpoint leaves out (read as data only)."""
    record = raw.get("lora")
    if not isinstance(record, dict):
        return None
    layers = record.get("layers") if isinstance(record.get("layers"), dict) else {}
    base = record.get("base") if isinstance(record.get("base"), dict) else {}
    types = Counter(str(v.get("type")) for v in layers.values() if isinstance(v, dict))
    return {
        "rank": as_number(record.get("rank")),
        "alpha": as_number(record.get("alpha")),
        "dropout": as_number(record.get("dropout")),
        "target": to_jsonable(record.get("target")),
        "modules_to_save": to_jsonable(record.get("modules_to_save")),
        "library": to_jsonable(record.get("library")),
        "layer_count": len(layers),
        "layer_types": dict(types.most_common()),
        "layers": [{"path": str(path), **to_jsonable(info)} for path, info in layers.items() if isinstance(info, dict)],
        "adapter_params": as_number(record.get("adapter_params")),
        "adapter_bytes": as_number(record.get("adapter_bytes")),
        "trainable_params": as_number(record.get("trainable_params")),
        "total_params": as_number(record.get("total_params")),
        "base": to_jsonable(base),
    }


def _other_keys(raw: dict, ckpt: LoadedCheckpoint) -> list[str]:
    """Top-level keys that no part of the summary interprets (a plain state dict has none)."""
    if ckpt.weights_key is None and ckpt.format == "state_dict":
        return []
    known = _LIGHTNING_KEYS if ckpt.format == "lightning" else _FTUI_KEYS
    return sorted(str(k) for k in raw if str(k) not in known and str(k) != ckpt.weights_key)


def _str_or_none(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def is_buffer(name: str) -> bool:
    """Normalisation statistics, which a state dict stores next to the parameters."""
    return name.rsplit(".", 1)[-1] in BUFFER_NAMES


def _weights_totals(infos: list[TensorInfo]) -> dict[str, Any]:
    return {
        "count": len(infos),
        "numel": sum(i.numel for i in infos),
        "params": sum(i.numel for i in infos if not is_buffer(i.name)),
        "bytes": sum(i.nbytes for i in infos),
        "dtypes": dict(Counter(i.dtype for i in infos).most_common()),
    }


def _frozen_lookup(tree: dict | None, finetune: dict | None):
    """A function tensor name -> frozen (True/False) or None when the checkpoint does not say."""
    flags: dict[str, bool] = {}
    if tree:
        for module in tree.get("modules") or []:
            if isinstance(module, dict) and "frozen" in module and module.get("path") is not None:
                flags[str(module["path"])] = bool(module["frozen"])
    frozen_paths = [str(p) for p in (finetune or {}).get("frozen") or []] if not flags else []
    # FineTuner records the exact frozen parameter names; modules' flags then only serve buffers.
    exact = finetune.get("frozen_params") if isinstance(finetune, dict) else None
    frozen_params = {str(n) for n in exact} if isinstance(exact, list) else None
    known = bool(flags) or finetune is not None

    def frozen(name: str) -> bool | None:
        if not known:
            return None
        if frozen_params is not None and not is_buffer(name):
            return name in frozen_params
        if flags:
            parts = name.split(".")
            for cut in range(len(parts) - 1, -1, -1):  # the nearest module that has a flag
                path = ".".join(parts[:cut])
                if path in flags:
                    return flags[path]
            return False
        return any(p == "" or name == p or name.startswith(p + ".") for p in frozen_paths)

    return frozen


def _modules(infos: list[TensorInfo], tree: dict | None, frozen_of) -> list[dict[str, Any]]:
    """Every module path (all prefixes of tensor names) with its aggregated size and frozen flag."""
    types = {}
    if tree:
        types = {str(m.get("path")): m.get("type") for m in tree.get("modules") or [] if isinstance(m, dict)}
    rows: dict[str, dict[str, Any]] = {}
    for info in infos:
        parts = info.name.split(".")
        flag = frozen_of(info.name)
        for depth in range(1, len(parts)):
            path = ".".join(parts[:depth])
            row = rows.get(path)
            if row is None:
                row = rows[path] = {"path": path, "depth": depth, "type": types.get(path), "tensors": 0, "numel": 0,
                                    "params": 0, "bytes": 0, "_flags": set()}
            row["tensors"] += 1
            row["numel"] += info.numel
            row["params"] += 0 if is_buffer(info.name) else info.numel
            row["bytes"] += info.nbytes
            if not is_buffer(info.name):
                row["_flags"].add(flag)
    for row in rows.values():
        flags = row.pop("_flags")
        if None in flags or not flags:
            row["frozen"] = None
        elif flags == {True}:
            row["frozen"] = True
        elif flags == {False}:
            row["frozen"] = False
        else:
            row["frozen"] = "partial"
    return list(rows.values())


def _architecture(ckpt: LoadedCheckpoint, raw: dict, tree: dict | None, config: dict | None,
                  infos: dict[str, TensorInfo]) -> dict[str, Any] | None:
    """Name, head and class count: from the checkpoint where it says, else guessed from key names."""
    found = _stated_architecture(ckpt, raw, tree, config)
    guess = guess_architecture(infos)
    if found is None:
        return dict(guess, source="guess") if guess else None
    if guess:  # fill what the checkpoint leaves out from the key names
        for key in ("head", "num_classes"):
            if found.get(key) is None:
                found[key] = guess[key]
    return found


def _stated_architecture(ckpt: LoadedCheckpoint, raw: dict, tree: dict | None,
                         config: dict | None) -> dict[str, Any] | None:
    data = raw.get("data") if isinstance(raw.get("data"), dict) else {}
    classes = data.get("class_names") if isinstance(data, dict) else None
    num_classes = len(classes) if isinstance(classes, list) else None
    if tree and tree.get("name"):
        return {"name": str(tree["name"]), "head": tree.get("head"), "num_classes": num_classes, "source": "checkpoint"}
    model_cfg = (config or {}).get("model")
    if isinstance(model_cfg, dict) and model_cfg.get("name"):
        return {"name": str(model_cfg["name"]), "head": None, "num_classes": num_classes, "source": "config"}
    if ckpt.metadata.get("architecture"):
        return {"name": ckpt.metadata["architecture"], "head": ckpt.metadata.get("head") or None,
                "num_classes": _json_len(ckpt.metadata.get("class_names")), "source": "metadata"}
    hp = raw.get("hyper_parameters")
    if isinstance(hp, dict):
        for key in ("arch", "architecture", "model_name", "backbone", "model"):
            if isinstance(hp.get(key), str):
                return {"name": hp[key], "head": None, "num_classes": as_number(hp.get("num_classes")),
                        "source": "hyper_parameters"}
    return None


def _json_len(text: str | None) -> int | None:
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return None
    return len(value) if isinstance(value, list) else None


def _best(raw: dict, lightning: bool) -> dict[str, Any] | None:
    if lightning:
        for name, state in (raw.get("callbacks") or {}).items():
            if isinstance(state, dict) and "best_model_score" in state:
                return {"metric": state.get("monitor"), "value": as_number(state.get("best_model_score")),
                        "source": str(name)[:80]}
        return None
    metrics = raw.get("metrics")
    best = metrics.get("best") if isinstance(metrics, dict) else None
    return to_jsonable(best) if isinstance(best, dict) and best else None


def _optimizer(raw: dict, config: dict | None, lightning: bool) -> dict[str, Any] | None:
    state = None
    if lightning:
        states = raw.get("optimizer_states")
        state = states[0] if isinstance(states, list) and states else None
    else:
        state = raw.get("optimizer")
    if not isinstance(state, dict) or "param_groups" not in state:
        return None
    groups = []
    for index, group in enumerate(state.get("param_groups") or []):
        if not isinstance(group, dict):
            continue
        options = {k: to_jsonable(v) for k, v in group.items()
                   if k not in ("params", "name", "lr") and isinstance(v, (int, float, bool, str, tuple, list))}
        groups.append({"index": index, "name": group.get("name"), "lr": as_number(group.get("lr")),
                       "params": len(group.get("params") or []), "options": options})
    tensors = nbytes = with_state = 0
    for entry in (state.get("state") or {}).values():
        if not isinstance(entry, dict):
            continue
        with_state += 1
        for value in entry.values():
            if hasattr(value, "element_size") and hasattr(value, "numel"):
                tensors += 1
                nbytes += value.numel() * value.element_size()
    kind, source = None, None
    optim_cfg = (config or {}).get("optim")
    if isinstance(optim_cfg, dict) and optim_cfg.get("name"):
        kind, source = str(optim_cfg["name"]), "config"
    else:
        kind = _guess_optimizer(state)
        source = "guess" if kind else None
    return {"type": kind, "type_source": source, "groups": groups, "params_with_state": with_state,
            "state_tensors": tensors, "state_bytes": nbytes}


def _guess_optimizer(state: dict) -> str | None:
    """Name the optimizer from its hyper-parameter keys (a torch state dict does not store its class)."""
    group = (state.get("param_groups") or [{}])[0]
    if not isinstance(group, dict):
        return None
    if "betas" in group:
        if "decoupled_weight_decay" in group:
            return "adamw" if group["decoupled_weight_decay"] else "adam"
        return "adam-family"
    if "centered" in group and "alpha" in group:
        return "rmsprop"
    if "momentum" in group and "nesterov" in group:
        return "sgd"
    if "lr_decay" in group:
        return "adagrad"
    return None


def _scheduler(raw: dict, lightning: bool) -> dict[str, Any] | None:
    if lightning:
        states = raw.get("lr_schedulers")
        state = states[0] if isinstance(states, list) and states else None
    else:
        state = raw.get("scheduler")
    if not isinstance(state, dict) or not state:
        return None
    return {k: to_jsonable(v) for k, v in state.items() if isinstance(v, (int, float, str, bool, list, tuple))}


def _data(ckpt: LoadedCheckpoint, raw: dict) -> dict[str, Any] | None:
    data = raw.get("data")
    if isinstance(data, dict):
        return to_jsonable(data)
    facts: dict[str, Any] = {}
    for key in ("class_names", "normalization", "input_shape", "task"):  # written by `ftui export`
        if key in ckpt.metadata:
            try:
                facts[key] = json.loads(ckpt.metadata[key])
            except ValueError:
                facts[key] = ckpt.metadata[key]
    return facts or None


def _metrics(raw: dict) -> dict[str, Any] | None:
    metrics = raw.get("metrics")
    if not isinstance(metrics, dict):
        return None
    out = to_jsonable(metrics)
    history = out.get("history")
    if isinstance(history, dict):
        out["history"] = {str(k): [as_number(v) if as_number(v) is not None else None for v in vals]
                          for k, vals in history.items() if isinstance(vals, list)}
    return out


def _lightning(raw: dict) -> dict[str, Any]:
    callbacks = raw.get("callbacks")
    return {
        "version": _str_or_none(raw.get("pytorch-lightning_version")),
        "hyper_parameters": to_jsonable(raw.get("hyper_parameters")) if raw.get("hyper_parameters") is not None else None,
        "callbacks": [str(k) for k in callbacks] if isinstance(callbacks, dict) else [],
        "optimizers": len(raw.get("optimizer_states") or []),
        "schedulers": len(raw.get("lr_schedulers") or []),
    }
