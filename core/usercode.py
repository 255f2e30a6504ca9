"""The user's own code, named in a config: parse a name, import it with clear errors, record what ran.

A *code name* has the form ``WHERE:ATTR`` (the ``module:attribute`` form of Python entry points):

- ``./models.py:Net`` or ``src/nets.py:build`` — a Python file. A relative path is relative to the
  config file that names it (to the current directory for a ``--set`` value or a config given as a
  dict); :func:`absolute_name` turns it into an absolute one when a config is loaded, so the
  resolved config (the run's ``config.yaml``, the checkpoint's ``config``) names one file wherever
  it is read.
- ``mypkg.models:build_net`` — an importable module, imported like ``python -m`` would: installed
  packages and the current directory.

ATTR may be dotted (``Outer.build``). The callable is called with the keyword arguments from the
config plus the *data facts* it asks for by name (:func:`call_with_facts`). What ran is recorded in
checkpoints (:meth:`LoadedCode.record`: the name, the file, a SHA-256 of its source), so a checkpoint
says what built it without anyone importing that code; ``core.training.rebuild`` decides when a
recorded name may be imported again (``--trust-code``).

This module never imports torch: ``ftui config check`` and the consent check stay fast.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import inspect
import os
import pickle
import re
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from core.errors import ConfigError, DataError, ModelError, UserError

# ATTR: a dotted Python identifier path; WHERE: anything before the last colon.
_ATTR = r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*"
_MODULE = re.compile(rf"^{_ATTR}$")
_NAME = re.compile(rf"^(?P<where>.+):(?P<attr>{_ATTR})$")
# Given from Python (ftui.run(model=...)): recorded, but nothing a config can rebuild.
OBJECT_PREFIX = "<object "
# Module names under which files are imported: one per (path, content), so an edited file is new code.
_MODULE_PREFIX = "_ftui_code_"


def is_code_name(value: Any) -> bool:
    """Whether ``value`` has the ``WHERE:ATTR`` form of a code name (not validated further)."""
    return isinstance(value, str) and not value.startswith(OBJECT_PREFIX) and bool(_NAME.match(value.strip()))


def is_object_name(value: Any) -> bool:
    """Whether ``value`` stands for a Python object given to the Python API."""
    return isinstance(value, str) and value.startswith(OBJECT_PREFIX) and value.endswith(">")


def object_name(obj: Any) -> str:
    """The config value recorded for a Python object: ``<object module.QualName>``."""
    cls = obj if inspect.isclass(obj) or inspect.isfunction(obj) else type(obj)
    return f"{OBJECT_PREFIX}{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', cls.__name__)}>"


@dataclass(frozen=True)
class CodeName:
    """A parsed code name: a file (``path``) or a module (``module``), and the attribute path."""

    text: str
    attr: str
    path: Path | None = None
    module: str | None = None

    @property
    def is_file(self) -> bool:
        return self.path is not None

    @property
    def short(self) -> str:
        """``models.py:Net`` for files, the name itself for modules (for titles and messages)."""
        return f"{self.path.name}:{self.attr}" if self.path is not None else self.text

    @property
    def where(self) -> str:
        """The file or module, as it should be named in a message."""
        return str(self.path) if self.path is not None else self.module or "?"


def parse_name(value: str, *, key: str, base: Path | None = None) -> CodeName:
    """Parse ``WHERE:ATTR``; a relative file path is resolved against ``base`` (default: the cwd).

    Raises:
        ConfigError: not of the form ``file.py:attr`` or ``package.module:attr``.
    """
    text = value.strip()
    match = _NAME.match(text)
    if not match:
        raise ConfigError(
            f"{key}: '{value}' does not name code. Fix: write FILE.py:NAME (e.g. ./models.py:Net, relative to the "
            "config file) or MODULE:NAME (e.g. mypkg.models:build_net)."
        )
    where, attr = match.group("where"), match.group("attr")
    if where.endswith(".py") or "/" in where or "\\" in where:
        path = Path(os.path.expanduser(where))
        if not path.is_absolute():
            path = (base or Path.cwd()) / path
        return CodeName(text=text, attr=attr, path=Path(os.path.normpath(path)))
    if not _MODULE.match(where):
        raise ConfigError(
            f"{key}: '{where}' in '{value}' is neither a Python file (ending in .py) nor a module path such as "
            "mypkg.models. Fix: name a file (./models.py:Net) or a module (mypkg.models:Net)."
        )
    return CodeName(text=text, attr=attr, module=where)


def absolute_name(value: str, *, key: str, base: Path) -> str:
    """The code name with its file made absolute (module names are returned unchanged)."""
    name = parse_name(value, key=key, base=base)
    return f"{name.path}:{name.attr}" if name.path is not None else name.text


def _error_type(key: str) -> type[UserError]:
    return DataError if key.startswith("data") else ModelError


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes (hex)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class LoadedCode:
    """An imported callable and where it came from."""

    name: CodeName
    obj: Any
    module: ModuleType
    file: Path | None  # the file the name points at (a module's own file for module names)
    sha256: str | None
    defined_in: Path | None  # the file that defines ``obj``, when it is another one

    def files(self) -> dict[str, str]:
        """Every source file behind the callable with its SHA-256 (the name's file first)."""
        out: dict[str, str] = {}
        if self.file is not None and self.sha256 is not None:
            out[str(self.file)] = self.sha256
        if self.defined_in is not None and self.defined_in.is_file() and str(self.defined_in) not in out:
            out[str(self.defined_in)] = file_sha256(self.defined_in)
        return out

    def record(self, kwargs: dict[str, Any], facts: dict[str, Any] | None = None) -> dict[str, Any]:
        """What goes into ``checkpoint["code"]``: JSON-safe, read without importing anything."""
        return {
            "kind": "file" if self.name.is_file else "module",
            "name": f"{self.name.path}:{self.name.attr}" if self.name.path is not None else self.name.text,
            "path": str(self.file) if self.file is not None else None,
            "module": self.name.module,
            "attr": self.name.attr,
            "sha256": self.sha256,
            "files": self.files(),
            "kwargs": _jsonable(kwargs),
            "facts": _jsonable(facts or {}),
        }


def load(value: str | CodeName, *, key: str, base: Path | None = None) -> LoadedCode:
    """Import the module or file of a code name and return the named callable.

    Raises:
        ModelError / DataError (by ``key``): the file is missing, the import fails (the message gives
        the error and its file:line), or the attribute does not exist (with a did-you-mean).
    """
    name = value if isinstance(value, CodeName) else parse_name(value, key=key, base=base)
    error = _error_type(key)
    if name.path is not None:
        module, sha = _import_file(name, key=key, error=error)
        file: Path | None = name.path
    else:
        module = _import_module(name, key=key, error=error)
        file = Path(module.__file__) if getattr(module, "__file__", None) else None
        sha = file_sha256(file) if file is not None and file.is_file() else None
    obj: Any = module
    for i, part in enumerate(name.attr.split(".")):
        if not hasattr(obj, part):
            raise error(_missing_attr(name, obj, part, ".".join(name.attr.split(".")[:i]), key))
        obj = getattr(obj, part)
    if not callable(obj):
        raise error(
            f"{key}: {name.attr} in {name.where} is a {type(obj).__name__}, not something ftui can call. Fix: name a "
            "class or a function that returns it."
        )
    defined = _source_file(obj)
    return LoadedCode(name=name, obj=obj, module=module, file=file, sha256=sha,
                      defined_in=defined if defined is not None and defined != file else None)


def _import_file(name: CodeName, *, key: str, error: type[UserError]) -> tuple[ModuleType, str]:
    path = name.path
    assert path is not None
    if not path.is_file():
        hint = "" if path.parent.is_dir() else f" (the folder {path.parent} does not exist either)"
        raise error(
            f"{key}: {path} does not exist{hint}. Fix: a relative path is relative to the config file that names it; "
            f"check the file name in '{name.text}'."
        )
    sha = file_sha256(path)
    module_name = module_name_for(path, sha)
    if module_name in sys.modules:
        return sys.modules[module_name], sha
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise error(f"{key}: {path} cannot be imported as Python code. Fix: name a .py file.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # before running it: dataclasses and pickle look themselves up there
    folder = str(path.parent)
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)  # sibling modules imported at the top of the file, as `python file.py` finds them
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:
        sys.modules.pop(module_name, None)
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise error(_import_failed(name, exc, key)) from exc
    finally:
        if added and folder in sys.path:
            sys.path.remove(folder)
    return module, sha


def module_name_for(path: Path, sha: str) -> str:
    """The module name a file is imported under: the same for the same path and content in every process."""
    digest = hashlib.sha256(f"{path}\0{sha}".encode()).hexdigest()[:12]
    stem = re.sub(r"\W", "_", path.stem)
    return f"{_MODULE_PREFIX}{stem}_{digest}"


def _import_module(name: CodeName, *, key: str, error: type[UserError]) -> ModuleType:
    assert name.module is not None
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)  # as `python -m` does; appended, so installed packages win
    try:
        return importlib.import_module(name.module)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (name.module == missing or name.module.startswith(missing + ".")):
            raise error(
                f"{key}: no module named '{missing}' (looked in the installed packages and in {cwd}). Fix: check "
                f"the module path in '{name.text}', install the package, or name a file instead: ./file.py:{name.attr}."
            ) from None
        raise error(_import_failed(name, exc, key)) from exc
    except BaseException as exc:
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise error(_import_failed(name, exc, key)) from exc


def _import_failed(name: CodeName, exc: BaseException, key: str) -> str:
    where = user_frame(exc)
    if isinstance(exc, SyntaxError) and exc.filename:
        where = f"{Path(exc.filename).name}:{exc.lineno}"
    fix = "install the missing package or correct the import" if isinstance(exc, ImportError) else (
        "correct the code at that line")
    return (f"{key}: importing {name.where} failed: {type(exc).__name__}: {_first_line(exc)}"
            f"{f' ({where})' if where else ''}. Fix: {fix} (--debug shows the traceback).")


def _missing_attr(name: CodeName, obj: Any, part: str, parent: str, key: str) -> str:
    owner = name.where + (f".{parent}" if parent else "")
    candidates = [n for n in dir(obj) if not n.startswith("_") and callable(getattr(obj, n, None))]
    if isinstance(obj, ModuleType):
        # what the file defines first (classes and functions), not what it imported
        own = [n for n in candidates if getattr(getattr(obj, n), "__module__", None) == obj.__name__]
        candidates = own or candidates
    close = difflib.get_close_matches(part, candidates, n=3, cutoff=0.5)
    hint = f" — did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    listed = f" It defines: {', '.join(candidates[:12])}." if candidates else ""
    return f"{key}: '{part}' is not defined in {owner}{hint}{listed} Fix: correct the name after the colon in '{name.text}'."


def _source_file(obj: Any) -> Path | None:
    try:
        found = inspect.getsourcefile(obj if inspect.isclass(obj) or inspect.isfunction(obj) else type(obj))
    except (TypeError, OSError):
        return None
    return Path(found).resolve() if found else None


def user_frame(exc: BaseException, files: tuple[Path, ...] | None = None) -> str:
    """``file.py:LINE in func`` of the innermost traceback frame outside Python's import machinery
    (inside one of ``files`` when given), for messages about errors in the user's code."""
    frames = traceback.extract_tb(exc.__traceback__)
    wanted = {str(f) for f in files} if files else None
    best = None
    for frame in frames:
        if "importlib" in frame.filename and "<frozen" in frame.filename:
            continue
        if wanted is not None and str(Path(frame.filename).resolve()) not in wanted and frame.filename not in wanted:
            continue
        if wanted is None and Path(frame.filename).resolve() == Path(__file__).resolve():
            continue
        best = frame
    if best is None:
        return ""
    return f"{Path(best.filename).name}:{best.lineno} in {best.name}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


# ---------------------------------------------------------------------------------------------
# Calling a user callable with the config's keyword arguments and the data facts
# ---------------------------------------------------------------------------------------------


def call_with_facts(
    fn: Callable[..., Any], kwargs: dict[str, Any], facts: dict[str, Any], *, key: str, label: str,
    files: tuple[Path, ...] = (),
) -> tuple[Any, dict[str, Any]]:
    """Call ``fn(**kwargs, **facts it names)``; returns the result and the keyword arguments used.

    A fact (``num_classes``, ``input_shape``, ...) is passed only when ``fn``'s signature names it
    as a parameter (a bare ``**kwargs`` does not receive facts: it usually forwards to code that
    would reject them). A key of the config's kwargs that is also a fact must agree with the data.

    Raises:
        ModelError / DataError: unknown or missing arguments, a disagreeing fact, or an exception
        raised by ``fn`` (with its file:line).
    """
    error = _error_type(key)
    kwargs_key = f"{key.split('.')[0]}.kwargs"
    try:
        sig: inspect.Signature | None = inspect.signature(fn)
    except (TypeError, ValueError):
        sig = None
    params = sig.parameters if sig is not None else {}
    named = {n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    call = dict(kwargs)
    for fact, value in facts.items():
        if fact in call:
            if _jsonable(call[fact]) != _jsonable(value):
                raise error(
                    f"{kwargs_key}.{fact}: {call[fact]!r} disagrees with the data ({fact} = {_jsonable(value)!r}). Fix: "
                    f"remove {kwargs_key}.{fact}; ftui passes {fact} from the data to callables that name it."
                )
        elif fact in named:
            call[fact] = value
    if sig is not None:
        accepts_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
        unknown = [k for k in call if k not in named and not accepts_any]
        if unknown:
            close = {k: difflib.get_close_matches(k, sorted(named), n=1) for k in unknown}
            hints = "; ".join(f"'{k}'" + (f" (did you mean '{c[0]}'?)" if c else "") for k, c in close.items())
            raise error(
                f"{kwargs_key}: {label} takes no argument {hints}. It accepts: {', '.join(sorted(named)) or 'none'}. "
                f"Fix: correct or remove the key in {kwargs_key}."
            )
        required = [n for n, p in params.items()
                    if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n not in call]
        if required:
            about = [n for n in required if n in facts]
            raise error(
                f"{kwargs_key}: {label} needs {', '.join(repr(n) for n in required)}, which the config does not give"
                + (f" (ftui knows {', '.join(about)} from the data only when the signature names it)" if about else "")
                + f". Fix: add {', '.join(f'{kwargs_key}.{n}' for n in required)} or give the parameter a default. "
                f"Data facts ftui passes by name: {', '.join(facts)}."
            )
    try:
        return fn(**call), call
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's code: report it with its line, exit 2
        where = user_frame(exc, files or None) or user_frame(exc)
        shown = ", ".join(f"{k}={_short(v)}" for k, v in call.items())
        raise error(
            f"{key}: {label}({shown}) raised {type(exc).__name__}: {_first_line(exc)}"
            f"{f' ({where})' if where else ''}. Fix: correct the code there or the arguments in {kwargs_key} "
            "(--debug shows the traceback)."
        ) from exc


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _jsonable(value: Any) -> Any:
    """Tuples as lists, recursively (facts and kwargs are stored in checkpoints and compared)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


# ---------------------------------------------------------------------------------------------
# Objects that travel to worker processes started by spawn/forkserver
# ---------------------------------------------------------------------------------------------


def code_files_of(obj: Any) -> list[tuple[str, str]]:
    """(path, module name) of the ftui-imported files ``obj``'s class or function comes from."""
    target = obj if inspect.isclass(obj) or inspect.isfunction(obj) else type(obj)
    module = getattr(target, "__module__", "") or ""
    mod = sys.modules.get(module)
    if module.startswith(_MODULE_PREFIX) and mod is not None and getattr(mod, "__file__", None):
        return [(mod.__file__, module)]
    return []


class CodeBound:
    """Pickles ``obj`` so that a fresh process imports its files first (spawn / forkserver workers).

    A class from a file ftui imported lives in a module named after the file and its content
    (:func:`module_name_for`); a fresh process re-imports the same files under the same names
    before unpickling, so DataLoader workers that are not forked can rebuild user datasets.
    """

    def __init__(self, obj: Any, files: list[tuple[str, str]]):
        self.obj = obj
        self.files = files

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return _restore_bound, (self.files, pickle.dumps(self.obj))


def _restore_bound(files: list[tuple[str, str]], payload: bytes) -> CodeBound:
    for path, module_name in files:
        if module_name not in sys.modules:
            spec = importlib.util.spec_from_file_location(module_name, path)
            if spec is not None and spec.loader is not None:
                module = importlib.util.module_from_spec(spec)
                sys.modules[module_name] = module
                folder = str(Path(path).parent)
                sys.path.insert(0, folder)
                try:
                    spec.loader.exec_module(module)
                finally:
                    sys.path.remove(folder)
    return CodeBound(pickle.loads(payload), files)


# ---------------------------------------------------------------------------------------------
# What a config names (read without importing)
# ---------------------------------------------------------------------------------------------

CODE_KEYS = ("model.name", "data.source", "data.collate")


def named_code(config: dict[str, Any] | Any) -> list[tuple[str, str]]:
    """``(key, code name)`` for every key of a config (a Config or its dict) that names user code."""
    raw = config if isinstance(config, dict) else config.model_dump(mode="json")
    found = []
    for key in CODE_KEYS:
        section, _, field = key.partition(".")
        value = (raw.get(section) or {}).get(field) if isinstance(raw.get(section), dict) else None
        if is_code_name(value) or is_object_name(value):
            found.append((key, str(value)))
    return found


def changed_code_files(recorded: dict[str, Any], current: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    """Files whose SHA-256 differs between a checkpoint's code record and the code built now.

    Returns ``{path: (sha256 then, sha256 now or None when the file is gone)}``.
    """
    now_files: dict[str, str] = {}
    for entry in current.values():
        if isinstance(entry, dict):
            now_files.update(entry.get("files") or {})
    changed: dict[str, tuple[str, str | None]] = {}
    for entry in recorded.values():
        if not isinstance(entry, dict):
            continue
        for path, then in (entry.get("files") or {}).items():
            now = now_files.get(path)
            if now is None:
                now = file_sha256(Path(path)) if Path(path).is_file() else None
            if now != then:
                changed[path] = (str(then), now)
    return changed
