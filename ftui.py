"""ftui from Python: the one import path for scripts and notebooks.

    import ftui

    result = ftui.run("config.yaml", model=MyNet(num_classes=4), data=ftui.DataSplits(train, val, class_names=names))
    result.path                       # runs/<name>: watch it with `ftui watch`, steer it with `ftui ctl`
    ftui.evaluate(result.checkpoints["best"], model=MyNet(num_classes=4), data=...)

``ftui.run`` trains in this process and records the same run directory as ``ftui run``; its
objects (model, data, callbacks) replace the config's names. The engine's packages (``core``,
``tui``) are internal names: import what you need from here, which stays stable when they move.
Importing this module is cheap: every name loads on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - for type checkers and editors
    from core import __version__
    from core.api import RunResult, evaluate, run
    from core.config import Config, config_from_dict, load_config
    from core.data.user import DataSplits
    from core.errors import FtuiError, TrainingFailed, UserError
    from core.training.callback import Callback
    from core.training.evaluate import Evaluation
    from core.training.rebuild import Rebuilt, rebuild
    from core.lora.export import base_model
    from core.training.trainer import Trainer

_HOMES = {
    "__version__": "core",
    "run": "core.api",
    "RunResult": "core.api",
    "evaluate": "core.api",
    "Config": "core.config",
    "load_config": "core.config",
    "config_from_dict": "core.config",
    "DataSplits": "core.data.user",
    "Callback": "core.training.callback",
    "Trainer": "core.training.trainer",
    "Evaluation": "core.training.evaluate",
    "rebuild": "core.training.rebuild",
    "base_model": "core.lora.export",
    "Rebuilt": "core.training.rebuild",
    "FtuiError": "core.errors",
    "UserError": "core.errors",
    "TrainingFailed": "core.errors",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'ftui' has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
