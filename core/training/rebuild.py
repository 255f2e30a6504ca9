"""Rebuilding a checkpoint's model and data: the one path that ``ftui eval`` (and every command that
needs the model back: export to runtimes, explain, compress) goes through.

A checkpoint holds the config it was trained with. When that config names the user's code
(``model.name: /abs/models.py:Net``, ``data.source``, ``data.collate``), rebuilding runs that code,
so it happens only with the user's consent, the way ``trust_remote_code`` works:

- the user passes a config file (``--config``) — they named the code themselves; or
- the user says ``--trust-code`` (``trust_code=True``) after reading which files would run.

Otherwise :class:`CodeNotTrusted` (exit 2) names the files and the command that runs them. Reading
a checkpoint — ``ftui inspect``, ``ftui diff``, the app — never gets here and never imports code:
``core.inspect`` reads ``checkpoint["code"]`` as data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from core.config import Config, config_from_dict, load_config
from core.errors import CheckpointError, ConfigError, UserError
from core.lora.names import needs_base
from core.usercode import is_object_name, named_code


class CodeNotTrusted(UserError):
    """A checkpoint names code that the user has not agreed to run."""


@dataclass
class Rebuilt:
    """A checkpoint's model and data, set up for evaluation (weights loaded, nothing recorded).

    Use it as a context manager (``with rebuild(path) as r: ...``) or call ``r.trainer.cleanup()``,
    so the data loaders' worker processes end when you are done.
    """

    trainer: Any  # core.training.Trainer after setup(ckpt, weights_only=True): .model, .data, .built, .device
    ckpt: dict[str, Any]
    config: Config
    code: list[str] = field(default_factory=list)  # the code names that were imported (for "running ..." lines)
    notices: list[str] = field(default_factory=list)  # e.g. a file changed since the checkpoint was written

    def __enter__(self) -> Rebuilt:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.trainer.cleanup()  # the loaders' worker processes end here


def rebuild(
    path: Path | str,
    *,
    config: Path | str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    trust_code: bool = False,
    model: Any = None,
    data: Any = None,
    command: str | None = None,
    ckpt: dict[str, Any] | None = None,
    announce: Callable[[list[str]], None] | None = None,
    base: Path | str | None = None,
    config_option: bool = True,
) -> Rebuilt:
    """Load ``path`` (weights_only) and rebuild its model and data with the checkpoint's weights.

    Args:
        path: an ftui checkpoint.
        config: a config file to rebuild with instead of the checkpoint's own (consent for the code it names).
        overrides: ``--set`` overrides on either config.
        trust_code: the user agrees to import the code the checkpoint's config names.
        model: an ``nn.Module`` or callable from Python that replaces the recorded model (``ftui.evaluate``).
        data: splits from Python that replace the recorded data source.
        command: the command line to suggest with ``--trust-code`` (default ``ftui eval PATH``).
        ckpt: the checkpoint, when the caller has read it already.
        announce: called with the code names about to be imported, before anything is imported
            (the CLI prints them: the user sees which files run).
        base: the base weights for a LoRA checkpoint that keeps its base in a file (``--base``), instead
            of the file it records; its SHA-256 may differ (a notice), its shapes may not.
        config_option: whether ``command`` takes ``--config`` (``ftui eval`` and ``ftui explain`` do,
            ``ftui export`` and ``ftui compress`` do not): messages suggest it only then.

    Raises:
        CodeNotTrusted: the checkpoint names code and neither ``config`` nor ``trust_code`` was given.
        CheckpointError / ConfigError / ModelError / DataError: unreadable or unusable inputs.
    """
    from core.training.checkpoint import load_file
    from core.training.trainer import Trainer

    path = Path(path)
    ckpt = ckpt if ckpt is not None else load_file(path)
    if config is not None:
        cfg = load_config(config, overrides)
    else:
        raw = ckpt.get("config")
        if not isinstance(raw, dict):
            run_config = path.parent.parent / "config.yaml"
            if run_config.is_file():
                base = command if config_option and command else f"ftui eval {path}"
                fix = f"Fix: with the config of the run it came from: `{base} --config {run_config}`."
            elif config_option:
                fix = "Fix: pass the config it was trained with as --config."
            else:
                fix = "Fix: evaluate it with the config it was trained with (`ftui eval` takes --config)."
            raise CheckpointError(f"{path}: holds no config, so its model cannot be rebuilt. {fix}")
        check_consent(raw, path, trust_code=trust_code, model=model, data=data, command=command,
                      config_option=config_option)
        cfg = config_from_dict(raw, overrides)
        if not any(o.startswith("trainer.device=") for o in overrides):
            cfg.trainer.device = "auto"  # the checkpoint may come from another machine
            if cfg.trainer.precision == "16-mixed":
                cfg.trainer.precision = "auto"  # float16 needs a GPU; auto picks what this machine has
    if base is not None:
        if not needs_base(ckpt):
            raise CheckpointError(
                f"{path}: --base names the base weights of a LoRA checkpoint that keeps them in a file, but this "
                f"checkpoint {'stores its whole model' if ckpt.get('lora') else 'holds no LoRA adapters'}. "
                "Fix: leave --base out."
            )
        cfg.model.weights = str(base)
    elif not needs_base(ckpt):
        cfg.model.weights = None  # the checkpoint's weights replace them
    cfg.logging.progress = "none"
    replaced = ({"model.name"} if model is not None else set()) | ({"data.source", "data.collate"} if data is not None else set())
    imported = [f"{key} {name}" for key, name in named_code(cfg) if not is_object_name(name) and key not in replaced]
    if imported and announce is not None:
        announce(imported)
    trainer = Trainer(cfg, record=False, default_callbacks=False, model=model, data=data)
    trainer.resumed_from = path
    trainer.setup(ckpt, weights_only=True)
    _run_int8_in_onnx_runtime(trainer, ckpt, path)
    return Rebuilt(trainer=trainer, ckpt=ckpt, config=cfg, code=imported, notices=list(trainer.notices))


def _run_int8_in_onnx_runtime(trainer: Any, ckpt: dict[str, Any], path: Path) -> None:
    """An int8 variant of ``ftui compress`` evaluates as the int8 ONNX model it holds (docs/compress.md):
    ``trainer.model`` keeps the float weights it was made from, ``trainer.eval_model`` runs the int8 one."""
    from core.compress.record import ONNX_KEY, RECORD_KEY, quantized

    if quantized(ckpt.get(RECORD_KEY)) is None:
        return
    blob = ckpt.get(ONNX_KEY)
    if blob is None or not hasattr(blob, "numpy"):
        trainer.cleanup()
        raise CheckpointError(
            f"{path}: its compression record says int8, but the int8 model ('{ONNX_KEY}') is missing. "
            "Fix: run `ftui compress` on the source checkpoint again."
        )
    import torch

    from core.compress.runtime import OrtClassifier

    trainer.eval_model = OrtClassifier(blob.numpy().tobytes(), threads=torch.get_num_threads())


def check_consent(
    raw_config: dict[str, Any], path: Path, *, trust_code: bool, model: Any = None, data: Any = None,
    command: str | None = None, config_option: bool = True,
) -> None:
    """Refuse to rebuild a checkpoint whose config names code, unless the user trusts it.

    Raises:
        CodeNotTrusted: code is named and ``trust_code`` is False (the message lists the files and
            gives the command with ``--trust-code``).
        ConfigError: a model or data that was a Python object and is not given again.
    """
    named = named_code(raw_config)
    replaced = {"model.name"} if model is not None else set()
    replaced |= {"data.source", "data.collate"} if data is not None else set()
    named = [(k, v) for k, v in named if k not in replaced]
    objects = [(k, v) for k, v in named if is_object_name(v)]
    if objects:
        key, value = objects[0]
        arg = "model" if key == "model.name" else "data"
        raise ConfigError(
            f"{path}: its {key} is {value}, a Python object given to ftui.run(); a checkpoint cannot rebuild it. "
            f"Fix: evaluate it from Python with the object: ftui.evaluate('{path}', {arg}=...)."
        )
    if not named or trust_code:
        return
    listed = "; ".join(f"{key}: {value}" for key, value in named)
    suggest = (command or f"ftui eval {path}") + " --trust-code"
    raise CodeNotTrusted(
        f"{path} was trained with your own code ({listed}). Rebuilding it imports and runs that code, which ftui does "
        f"only when you say so. Fix: if you trust those files, run `{suggest}`"
        + ("; or pass the config that names the code with --config." if config_option else ".")
    )
