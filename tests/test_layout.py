"""The layout's rules, checked on the source: the data flows one way and no two modules import each other.

image -> model/ -> explain/ -> app/ and demo.py; training/ builds what model/ serves. Imports inside
functions count too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("model", "explain", "training", "app", "benchmarks")
NEVER = {  # package -> packages it must not import
    "model": {"explain", "training", "app", "benchmarks", "tests", "gradio"},
    "explain": {"training", "app", "benchmarks", "tests", "gradio"},
    "training": {"app", "benchmarks", "tests", "gradio"},
    "app": {"training", "benchmarks", "tests"},
    "benchmarks": {"tests"},
}


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the packages and their subpackages."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _imports() -> dict[str, set[str]]:
    """Module -> the modules (and top-level packages) it imports, resolved from relative imports."""
    graph: dict[str, set[str]] = {}
    for name, path in _modules().items():
        package = name if path.stem == "__init__" else name.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1])
                    target = ".".join(p for p in (base, node.module) if p)
                else:
                    target = node.module
                found.add(target)
                found |= {f"{target}.{a.name}" for a in node.names}
        graph[name] = found
    return graph


def test_lower_layers_never_import_upper_ones():
    bad = [(module, target) for module, targets in _imports().items() for target in targets
           if target.split(".")[0] in NEVER[module.split(".")[0]]]
    assert not bad, bad


def test_no_two_modules_import_each_other_even_through_others():
    imports = _imports()
    graph = {m: {t for t in ts if t in imports} - {m} for m, ts in imports.items()}

    def reaches(start: str, goal: str) -> bool:
        seen, stack = set(), [start]
        while stack:
            for nxt in graph[stack.pop()]:
                if nxt == goal:
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return False

    circles = sorted({tuple(sorted((a, b))) for a in graph for b in graph[a] if reaches(b, a)})
    assert not circles, circles


def test_only_model_card_opens_the_model_card():
    """``model/card.py`` owns the file: every other module reads and writes it through its functions."""
    opening = {"read_text", "write_text", "read_bytes", "write_bytes", "open", "loads", "load", "dump", "dumps"}
    found = []
    for path in [ROOT / "demo.py", *_modules().values()]:
        if path == ROOT / "model" / "card.py":
            continue
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name not in opening:  # before the source segment, which rescans the file for every call
                continue
            text = ast.get_source_segment(source, node) or ""
            if any(word in text for word in ("CARD_FILE", "model_card", "card_path")):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {text.splitlines()[0]}")
    assert not found, found


def test_nothing_under_model_imports_keras_or_tensorflow():
    """model/ serves without TensorFlow: the Keras network lives in training/network.py."""
    heavy = {"keras", "tensorflow", "tf_keras"}
    found = []
    for path in sorted((ROOT / "model").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            found += [f"{path.relative_to(ROOT)}:{node.lineno}: {n}" for n in names if n.split(".")[0] in heavy]
    assert not found, found


# where an import may wait inside a function, each with its reason written beside it: the command lines
# (start-up time), LiteRT (loads with a model) and Ray (after the variable Ray reads when imported)
LATE_IMPORTS = {"training.__main__": None, "model.cli": None, "model.runtime": {"ai_edge_litert.interpreter"},
                "model.ray_engine": {"ray"}}


def test_training_and_model_import_at_the_top():
    late = []
    for name, path in _modules().items():
        if name.split(".")[0] not in ("training", "model") or (name in LATE_IMPORTS and LATE_IMPORTS[name] is None):
            continue
        for function in ast.walk(ast.parse(path.read_text())):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    target = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                    if target not in LATE_IMPORTS.get(name, set()):
                        late.append(f"{path.relative_to(ROOT)}:{node.lineno}: {target}")
    assert not late, late


def test_the_files_the_suite_starts_first_exist():
    """A renamed test file would silently fall back to xdist's worst order."""
    from tests.conftest import LONGEST_FIRST

    missing = [name for name in LONGEST_FIRST if not (ROOT / "tests" / name).is_file()]
    assert not missing and len(set(LONGEST_FIRST)) == len(LONGEST_FIRST), missing
