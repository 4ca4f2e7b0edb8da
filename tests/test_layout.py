"""The package's shape: parts that import each other in one direction, modules a reader can
hold in mind, and a dashboard that reaches the engine through two doors only."""

import ast
import importlib
from pathlib import Path

import transferlab

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "transferlab"
LONGEST = 450


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """The engine modules `path` imports anywhere (in functions too), except under TYPE_CHECKING;
    importing a module also imports its packages."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    skip = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING")
        for n in ast.walk(node)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for target in targets:
            parts = target.split(".")
            found |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)} & modules
    ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
    return found - {name} - ancestors  # a module's packages are already importing when it runs


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imported_modules(p, modules) for p in paths}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the path, 2 done
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle():
    graph = import_graph()
    assert "transferlab.models.registry" in graph["transferlab.training.run"]  # the walker sees imports
    assert "transferlab.models" in graph["transferlab.training.run"]  # and the packages they run
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_walker_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_registries_import_no_models_and_no_datasets():
    graph = import_graph()
    assert graph["transferlab.models.registry"] <= {"transferlab", "transferlab.models", "transferlab.errors"}
    assert graph["transferlab.data.registry"] <= {"transferlab", "transferlab.data", "transferlab.errors"}


def test_parts_depend_one_way():
    """models, data, training, studies, serve: each part imports only the parts before it."""
    order = ["models", "data", "training", "studies", "serve"]
    part = lambda module: module.split(".")[1] if module.count(".") else ""  # noqa: E731
    for module, targets in import_graph().items():
        if part(module) in order:
            later = {t for t in targets if part(t) in order and order.index(part(t)) > order.index(part(module))}
            assert not later, f"{module} imports {later}"


def test_no_module_is_too_long():
    long = {
        str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > LONGEST
    }
    assert not long, f"over {LONGEST} lines: {long}"


def test_the_dashboard_reaches_the_engine_through_two_doors():
    doors = {"transferlab", "transferlab.serve"}
    for path in [ROOT / "app.py", *sorted((ROOT / "dashboard").glob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("transferlab"):
                assert node.module in doors, f"{path.name} imports {node.module}"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("transferlab.") or alias.name in doors, (
                        f"{path.name}: {alias.name}"
                    )


def test_the_engine_never_imports_streamlit_ipython_or_the_dashboard():
    """The engine runs in lessons, workers and Ray actors, none of which has a page."""
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            assert not any(n.split(".")[0] in ("streamlit", "IPython", "dashboard") for n in names), f"{path}: {names}"


def test_every_exported_name_resolves():
    for package in (transferlab, importlib.import_module("transferlab.serve")):
        for name in package.__all__:
            assert getattr(package, name) is not None, f"{package.__name__}.{name}"
    assert transferlab.compare.__module__ == "transferlab.training.comparison"
