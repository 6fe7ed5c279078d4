"""The test tree's own rules: shared helpers come from tests/support/, never from conftest or
from another test file, and a test file's basename is unique (pytest imports it by that name)."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def _test_files() -> list[Path]:
    return sorted(path for path in TESTS.rglob("test_*.py") if "support" not in path.relative_to(TESTS).parts)


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(module, imported names, line) of every import in the file, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, [alias.name for alias in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names]
    return found


def test_no_test_file_imports_from_conftest_or_a_private_name_from_another_test_file():
    test_modules = {path.stem for path in _test_files()}
    offences = []
    for path in [*_test_files(), *sorted((TESTS / "support").glob("*.py"))]:
        where = path.relative_to(TESTS)
        for module, names, line in _imports(path):
            top = module.split(".")[0]
            if top == "conftest":
                offences.append(f"{where}:{line}: imports from conftest (use tests/support/)")
            elif top in test_modules and top != path.stem:
                private = [name for name in names if name.startswith("_")] or names or [module]
                offences.append(f"{where}:{line}: imports {private} from the test file {module} (use tests/support/)")
    assert offences == []


def test_support_holds_no_private_names_that_test_files_import():
    offences = []
    for path in _test_files():
        for module, names, line in _imports(path):
            if module.split(".")[0] == "support":
                offences += [f"{path.relative_to(TESTS)}:{line}: {module}.{n}" for n in names if n.startswith("_")]
    assert offences == []


def test_test_file_names_are_unique_across_folders():
    counts = Counter(path.name for path in _test_files())
    assert [name for name, count in counts.items() if count > 1] == []


def test_the_check_sees_what_it_forbids(tmp_path):
    """The scan finds `from conftest import` and a private import from a test file, at any depth."""
    sample = tmp_path / "test_sample.py"
    sample.write_text(
        "def test_x():\n    from conftest import needs_shared\n    from test_errors import _closed_port\n"
    )
    assert [(module, names) for module, names, _ in _imports(sample)] == [
        ("conftest", ["needs_shared"]),
        ("test_errors", ["_closed_port"]),
    ]
