"""The engine package stays plain Python."""

import subprocess
import sys

from conftest import REPO_ROOT

CHECK = """
import importlib, pkgutil, sys
import pos_core
for module in pkgutil.iter_modules(pos_core.__path__):
    importlib.import_module("pos_core." + module.name)
leaked = sorted(name for name in sys.modules if name == "odoo" or name.startswith("odoo."))
print(",".join(leaked))
"""


def test_importing_every_engine_module_never_imports_odoo():
    result = subprocess.run(
        [sys.executable, "-c", CHECK],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_engine_modules_do_not_mention_odoo_imports():
    offenders = []
    for path in (REPO_ROOT / "pos_core").rglob("*.py"):
        for number, text in enumerate(path.read_text().splitlines(), 1):
            stripped = text.strip()
            if stripped.startswith(("import odoo", "from odoo")):
                offenders.append(f"{path.name}:{number}")
    assert offenders == []
