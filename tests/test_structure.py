"""The code's shape, checked: callbacks use the trainer's public API only, the trainer creates its
state in ``__init__``, no import cycles between modules of ``core/`` and ``tui/``, imports go one way
between layers (``core`` never imports ``tui``, ``core.system`` never ``core.training``, widgets never
screens), and test modules share helpers only through ``tests/support``.

These read the source (``ast``), so they fail on the line that breaks a rule, before any behaviour
does. docs/architecture.md describes the shape they keep.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: Code that receives the trainer and must use its public surface only.
CALLBACK_CODE = ("core/training/callbacks", "core/system")


def _python_files(*folders: str) -> list[Path]:
    return sorted(f for folder in folders for f in (REPO / folder).rglob("*.py"))


def _trainer_names(func: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    """Names that hold the trainer inside ``func``: a parameter called ``trainer`` or annotated
    ``Trainer``, and local names assigned from one of those."""
    names = set()
    args = func.args
    for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
        annotation = ast.unparse(arg.annotation) if arg.annotation is not None else ""
        if arg.arg == "trainer" or annotation.strip("'\"").split(".")[-1] == "Trainer":
            names.add(arg.arg)
    for node in ast.walk(func):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Name) and node.value.id in names:
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_trainer_accesses(path: Path) -> list[str]:
    """``file:line: text`` of every use of the trainer's private state in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for func in ast.walk(tree):
        if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        names = _trainer_names(func)
        if not names:
            continue
        for node in ast.walk(func):
            bad = False
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in names:
                bad = _private(node.attr)
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                  and node.func.id in ("getattr", "hasattr", "setattr", "delattr") and len(node.args) >= 2
                  and isinstance(node.args[0], ast.Name) and node.args[0].id in names
                  and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)):
                bad = _private(node.args[1].value)
            if bad:
                found.append((node.lineno, f"{_shown(path)}:{node.lineno}: {ast.unparse(node)}"))
    return [text for _, text in sorted(set(found))]


def _shown(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else path.name


def test_callbacks_use_only_the_trainers_public_api() -> None:
    found = [hit for f in _python_files(*CALLBACK_CODE) for hit in private_trainer_accesses(f)]
    assert not found, "callbacks touch the trainer's private state:\n" + "\n".join(found)


def test_the_private_access_check_catches_each_form(tmp_path: Path) -> None:
    # the check itself, on a file that breaks the rule every way it knows
    sample = tmp_path / "cb.py"
    sample.write_text(
        "def on_fit_start(self, trainer):\n"
        "    trainer._agree_step()\n"
        "    t = trainer\n"
        "    t._window_start += 1\n"
        "    hasattr(trainer, '_epoch_t0')\n"
        "    trainer.__class__, trainer.public\n"
        "def hook(self, tr: 'Trainer'):\n"
        "    getattr(tr, '_x')\n",
        encoding="utf-8",
    )
    hits = private_trainer_accesses(sample)
    assert [h.split(": ", 1)[1] for h in hits] == [
        "trainer._agree_step", "t._window_start", "hasattr(trainer, '_epoch_t0')", "getattr(tr, '_x')",
    ]


def test_the_trainer_creates_every_attribute_in_init() -> None:
    source = REPO / "core" / "training" / "trainer.py"
    tree = ast.parse(source.read_text(encoding="utf-8"))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Trainer")
    methods = [n for n in cls.body if isinstance(n, ast.FunctionDef)]
    properties = {m.name for m in methods if any(ast.unparse(d) in ("property", "cached_property") for d in m.decorator_list)}

    def assigned(func: ast.FunctionDef) -> dict[str, int]:
        out: dict[str, int] = {}
        for node in ast.walk(func):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
                node, (ast.AnnAssign, ast.AugAssign)) else []
            for target in targets:
                for t in ast.walk(target):
                    if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self":
                        out.setdefault(t.attr, node.lineno)
        return out

    init = assigned(next(m for m in methods if m.name == "__init__"))
    late = [f"trainer.py:{line}: self.{name} (in {m.name})" for m in methods if m.name != "__init__"
            for name, line in assigned(m).items() if name not in init and name not in properties]
    assert not late, "attributes created outside Trainer.__init__:\n" + "\n".join(late)


def import_graph(*packages: str) -> dict[str, set[str]]:
    """Module -> the modules of ``packages`` it imports (at any depth of the code, lazily or not; imports
    under ``if TYPE_CHECKING`` and of a module's own parent packages left out)."""
    modules: dict[str, Path] = {}
    for package in packages:
        for f in (REPO / package).rglob("*.py"):
            parts = list(f.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = f

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, f in modules.items():
        tree = ast.parse(f.read_text(encoding="utf-8"))
        skipped = {id(sub) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                   for sub in ast.walk(node)}
        package = module if f.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(up + ([base] if base else []))
                targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
            else:
                continue
            for target in targets:
                found = resolve(target)
                if found and found != module and not module.startswith(found + "."):
                    graph[module].add(found)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycles_between_modules_of_core_and_tui() -> None:
    found = cycles(import_graph("core", "tui"))
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_the_cycle_check_finds_one() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]


#: (importer, imported) prefixes that must never meet: the layers' direction.
LAYERS = (
    ("core", "tui"),  # the engine never knows its face
    ("core.system", "core.training"),  # telemetry is a library the trainer uses, not the other way
    ("tui.widgets", "tui.screens"),  # screens compose widgets; a widget asks by message
)


def test_imports_go_one_way_between_layers() -> None:
    graph = import_graph("core", "tui")
    bad = [f"{m} imports {t}" for m, targets in graph.items() for t in sorted(targets)
           for low, high in LAYERS if (m == low or m.startswith(low + ".")) and (t == high or t.startswith(high + "."))]
    assert not bad, "\n".join(bad)


def test_test_modules_share_helpers_through_support_only() -> None:
    found = []
    for f in sorted((REPO / "tests").glob("test_*.py")):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{f.name}:{node.lineno} imports {n}" for n in names if n.split(".")[0].startswith("test_")]
    assert not found, "shared helpers belong in tests/support/:\n" + "\n".join(found)
