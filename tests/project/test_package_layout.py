"""The package's shape: no import cycle, no import done for its side effect, modules of a readable size."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "dask_prep"
MAX_MODULE_LINES = 360  # "~350": a module past it is doing more than one job


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_map() -> dict[str, set[str]]:
    """Every dask_prep module → the dask_prep modules it imports (at any depth of its code)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}

    def known(name: str) -> str:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    imports: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(known(alias.name) for alias in node.names if alias.name.startswith("dask_prep"))
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(parent + ([base] if base else []))
                if base.startswith("dask_prep"):
                    found.update(known(f"{base}.{alias.name}") for alias in node.names)
        # A submodule importing its own package's __init__ is how packages work, not a cycle.
        imports[name] = {m for m in found if m and m != name and not name.startswith(m + ".")}
    return imports


def test_the_import_map_has_no_cycle():
    imports = _import_map()
    state: dict[str, str] = {}
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for dependency in sorted(imports[module]):
            if state.get(dependency) == "open":
                cycles.append(path[path.index(dependency) :] + [dependency])
            elif dependency not in state:
                visit(dependency, path + [dependency])
        state[module] = "done"

    for module in sorted(imports):
        if module not in state:
            visit(module, [module])
    assert not cycles, cycles


def test_no_import_is_done_for_its_side_effect():
    # An unused import kept with `noqa: F401` runs a module for what importing it does.
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{number}"
        for path in PACKAGE.rglob("*.py")
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if "import" in line and "F401" in line
    ]
    assert not offenders


def test_no_module_is_over_about_350_lines():
    sizes = {
        str(p.relative_to(PACKAGE.parent)): len(p.read_text(encoding="utf-8").splitlines())
        for p in PACKAGE.rglob("*.py")
    }
    assert {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES} == {}


# Pipeline order: a module may import from its own layer and the layers before it, never after.
LAYERS = [
    {"document", "workers", "config"},
    {"io"},
    {"dedup"},
    {"coref"},
    {"analysis"},
    {"stats"},
    {"output"},
    {"report"},
    {"pipeline"},
    {"cli"},
]


def _layer(module: str) -> int:
    if module in ("dask_prep", "dask_prep.__main__"):  # the public API and `python -m`: above everything
        return len(LAYERS)
    top = module.split(".")[1]
    for index, names in enumerate(LAYERS):
        if top in names:
            return index
    raise AssertionError(f"{module} belongs to no layer: add its subpackage to LAYERS")


def test_subpackages_import_one_way():
    backwards = [
        f"{module} -> {dependency}"
        for module, dependencies in _import_map().items()
        for dependency in dependencies
        if _layer(dependency) > _layer(module)
    ]
    assert not backwards, backwards


def test_every_file_in_the_package_is_python():
    # A stray file (a merge's *.orig, a notebook checkpoint) escapes ruff and these tests.
    stray = [
        str(p.relative_to(PACKAGE.parent))
        for p in PACKAGE.rglob("*")
        if p.is_file() and p.suffix not in {".py", ".typed"} and "__pycache__" not in p.parts
    ]
    assert not stray, stray


MAX_FUNCTION_LINES = 80  # "~80": a longer function is doing more than one job


def function_lengths(source: str) -> dict[str, int]:
    """{qualified name: lines from its `def` to its last line} of every function and method in `source`."""
    lengths: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                lengths[name] = child.end_lineno - child.lineno + 1
                visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(source), "")
    return lengths


def test_the_measure_sees_methods_and_nested_functions():
    body = "\n".join(f"    x{i} = {i}" for i in range(90))
    source = (
        f"class A:\n    def long(self):\n        def inner():\n            pass\n{body.replace('    ', '        ')}\n"
    )
    lengths = function_lengths(source)
    assert lengths["A.long"] == 93 and lengths["A.long.inner"] == 2


def test_no_function_is_over_about_80_lines():
    offenders = {
        f"{path.relative_to(PACKAGE.parent)}:{name}": lines
        for path in sorted(PACKAGE.rglob("*.py"))
        for name, lines in function_lengths(path.read_text(encoding="utf-8")).items()
        if lines > MAX_FUNCTION_LINES
    }
    assert offenders == {}, offenders
