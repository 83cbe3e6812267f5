"""The package graph runs top-down in pipeline order, with no cycles.

Every `import` statement of ual_dagster/ and assets/ counts, wherever it stands (inside a
function too), so a function-level import cannot hide a cycle. A function-level import of a
project module is allowed for one reason only: the target pulls in a heavy library (torch,
transformers, lm-eval, ...) that loading the Dagster definitions must not pay for; any
other project import belongs at the top of the module, where the graph is visible.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ual_dagster", "assets")

# Pipeline order: a module may import from its own layer and the layers above it, never below.
LAYERS: list[tuple[str, ...]] = [
    (
        "ual_dagster",
        "ual_dagster.fingerprint",
        "ual_dagster.jsonl",
        "ual_dagster.progress",
        "ual_dagster.loopback",
        "ual_dagster.processes",
        "ual_dagster.testbed_families",
        "ual_dagster.versions",
    ),
    ("ual_dagster.figures",),
    ("ual_dagster.config",),
    ("ual_dagster.storage", "ual_dagster.cluster"),
    ("ual_dagster.models",),
    ("ual_dagster.data",),
    ("ual_dagster.elicitation",),
    ("ual_dagster.train",),
    ("ual_dagster.evaluation",),
    ("ual_dagster.plan", "ual_dagster.preflight", "ual_dagster.__main__"),
    ("assets",),
]

# Deferred inside functions so that loading the code location (every `dagster` command, every
# run worker) stays light; the last test checks that it does.
HEAVY = {
    "torch",
    "transformers",
    "peft",
    "accelerate",
    "lm_eval",
    "alpaca_eval",
    "datasets",
    "openai",
    "fastapi",
    "uvicorn",
    "matplotlib",
    "scipy",
    "sklearn",
    "gguf",
    "dagster_k8s",
}


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    line: int
    in_function: bool
    third_party: str | None = None


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = path
    return mods


MODULES = _modules()


def _project_module(name: str) -> str | None:
    """The module `name` resolves to (`a.b.c` may name an object in module `a.b`)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports_of(module: str, path: Path) -> list[Import]:
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                continue  # annotations only: never executed
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                visit(child, True)
                continue
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = module.split(".") if is_package else module.split(".")[:-1]
                    base = base[: len(base) - (child.level - 1)]
                    mod = ".".join(base + ([child.module] if child.module else []))
                else:
                    mod = child.module or ""
                # `from pkg import sub` imports the submodule sub; `from mod import name` only mod
                names = (
                    [
                        f"{mod}.{a.name}" if _project_module(f"{mod}.{a.name}") != _project_module(mod) else mod
                        for a in child.names
                    ]
                    if mod.split(".")[0] in PACKAGES
                    else [mod]
                )
            for name in names:
                top = name.split(".")[0]
                if top in PACKAGES:
                    target = _project_module(name)
                    if target and target != module:
                        found.append(Import(module, target, child.lineno, in_function))
                elif top in HEAVY:
                    found.append(Import(module, name, child.lineno, in_function, third_party=top))
            visit(child, in_function)

    visit(tree, False)
    return found


IMPORTS = [imp for module, path in MODULES.items() for imp in _imports_of(module, path)]
PROJECT_IMPORTS = [imp for imp in IMPORTS if imp.third_party is None]


def _layer(module: str) -> int:
    best, index = -1, None
    for i, layer in enumerate(LAYERS):
        for prefix in layer:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, index = len(prefix), i
    assert index is not None, f"{module} is in no layer of tests/test_import_graph.py: add it"
    return index


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            connect(v)
    return found


def _edges(imports: list[Import]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for imp in imports:
        edges.setdefault(imp.source, set()).add(imp.target)
    return edges


def test_the_cycle_finder_finds_a_cycle_and_accepts_a_chain():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": {"c"}, "d": {"a", "c"}}) == []


def test_the_walker_sees_imports_inside_functions():
    assert any(imp.in_function for imp in IMPORTS), "no function-level import found at all: is the walker broken?"
    assert len(MODULES) > 50 and len(PROJECT_IMPORTS) > 100


def test_no_import_cycles():
    assert _cycles(_edges(PROJECT_IMPORTS)) == []


def test_imports_follow_the_pipeline_order():
    upward = [
        f"{imp.source}:{imp.line} imports {imp.target}"
        for imp in PROJECT_IMPORTS
        if _layer(imp.target) > _layer(imp.source)
    ]
    assert upward == [], "a module imports from a later pipeline stage:\n" + "\n".join(upward)


def _heavy_at_import(module: str, seen: set[str] | None = None) -> str | None:
    """A heavy library that importing `module` loads (through its module-level imports), if any."""
    seen = seen if seen is not None else set()
    if module in seen:
        return None
    seen.add(module)
    parts = module.split(".")
    # importing a.b.c runs a/__init__ and a/b/__init__ first
    chain = [".".join(parts[:i]) for i in range(1, len(parts))] + [module]
    for mod in chain:
        for imp in IMPORTS:
            if imp.source != mod or imp.in_function:
                continue
            if imp.third_party:
                return imp.third_party
            heavy = _heavy_at_import(imp.target, seen)
            if heavy:
                return heavy
    return None


def test_function_level_project_imports_only_defer_heavy_libraries():
    hidden = [
        f"{imp.source}:{imp.line} imports {imp.target} inside a function (move it to the top)"
        for imp in PROJECT_IMPORTS
        if imp.in_function and _heavy_at_import(imp.target) is None
    ]
    assert hidden == [], "\n".join(hidden)


def _heavy_loaded_by(module: str) -> list[str]:
    """The heavy libraries in sys.modules after a fresh interpreter imports `module`."""
    probe = f"import sys, {module}; print(sorted(m for m in {sorted(HEAVY)!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    return eval(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "module", ["ual_dagster.train.records", "ual_dagster.train.prompts", "ual_dagster.train.checkpoints"]
)
def test_the_training_records_prompts_and_checkpoints_load_no_torch(module):
    """What the definitions and evaluation read about a training run (its examples, spec, result,
    file names, prompt format, checkpoint plan) is plain Python: importing it loads no torch."""
    assert _heavy_loaded_by(module) == []


def test_loading_the_definitions_imports_no_heavy_library():
    probe = f"import sys, assets.definitions; print(sorted(m for m in {sorted(HEAVY)!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
