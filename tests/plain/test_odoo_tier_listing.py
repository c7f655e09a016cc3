"""Odoo's own runner (``odoo-bin --test-enable``) runs only the test modules
that ``tests/__init__.py`` imports, where pytest-odoo finds every file: a
module missing there would pass one runner while the other never runs it."""

import ast

from conftest import REPO_ROOT


def test_every_odoo_tier_test_module_is_imported_for_odoos_runner():
    tests = REPO_ROOT / "tests"
    tree = ast.parse((tests / "__init__.py").read_text())
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level == 1 and not node.module
        for alias in node.names
    }
    on_disk = {path.stem for path in tests.glob("test_*.py")}
    assert on_disk, "no Odoo-tier test module found"
    assert sorted(on_disk - imported) == []
    assert sorted(imported - on_disk) == []
