"""The layer rules of DESIGN.md, checked on the source so they cannot rot.

Each rule names a package and the top-level modules it must never import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "raytui"

RULES: dict[str, set[str]] = {
    "model": {"textual", "rich", "ray", "trio", "libp2p", "httpx", "asyncio", "pynvml", "ollama"},
    "sources": {"textual", "trio", "libp2p"},
    "backends": {"textual", "trio", "libp2p"},
    "proxy": {"textual", "rich", "asyncio", "ray"},
    "tui": {"ray", "trio", "libp2p", "pynvml", "ollama"},
    "tui/widgets": {"ray", "trio", "libp2p", "pynvml", "ollama", "httpx", "raytui.sources"},
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def violations(package: str, banned: set[str]) -> list[str]:
    bad = []
    for path in sorted((SRC / package).rglob("*.py")):
        for module in imported_modules(path):
            for ban in banned:
                if module == ban or module.startswith(ban + "."):
                    bad.append(f"{path.relative_to(SRC)} imports {module}")
    return bad


@pytest.mark.parametrize("package", sorted(RULES))
def test_layer_never_imports_banned_modules(package: str) -> None:
    assert (SRC / package).is_dir()
    assert violations(package, RULES[package]) == []


def test_rule_checker_catches_a_violation(tmp_path: Path) -> None:
    sample = tmp_path / "bad.py"
    sample.write_text("import textual.app\nfrom ray.util import state\n")
    assert imported_modules(sample) >= {"textual.app", "ray.util"}
