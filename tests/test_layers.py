"""The layer rules of DESIGN.md, so they cannot rot.

The rules themselves are import-linter contracts in pyproject.toml (`[tool.importlinter]`), also
run by scripts/test; this module runs them too, and checks at run time what no static graph can:
that starting the TUI loads neither trio nor libp2p.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_import_contracts_hold() -> None:
    result = lint_imports()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_contracts_catch_a_data_layer_reaching_sideways(tmp_path: Path) -> None:
    """The contracts see a planted `sources -> backends` import (the kind once in attach.py)."""
    src = tmp_path / "src"
    subprocess.run(["cp", "-r", str(ROOT / "src" / "raytui"), str(src / "raytui")], check=False)
    if not (src / "raytui").is_dir():
        (src).mkdir(parents=True, exist_ok=True)
        subprocess.run(["cp", "-r", str(ROOT / "src" / "raytui"), str(src)], check=True)
    planted = src / "raytui" / "sources" / "planted.py"
    planted.write_text("from raytui.backends import dispatch\n", encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text(
        (ROOT / "pyproject.toml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(src)},
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "raytui.sources.planted -> raytui.backends.dispatch" in result.stdout


# Runs the TUI command's real path (cli.main -> commands.tui -> RaytuiApp) headless up to its
# first composed screen, then names what it loaded. The address is a closed local port.
TUI_START = textwrap.dedent(
    """
    import asyncio, sys
    from raytui.tui.app import RaytuiApp

    def run(self, *args, **kwargs):
        async def first_frame():
            async with self.run_test(headless=True, size=(100, 30)) as pilot:
                await pilot.pause()
                print("COMPOSED", len(self.screen.query("*")) > 0)
        asyncio.run(first_frame())

    RaytuiApp.run = run
    import raytui.cli
    raytui.cli.main(["--address", "http://127.0.0.1:9"])
    loaded = sorted(
        name for name, module in sys.modules.items()
        if module is not None and name.split(".")[0] in ("trio", "libp2p")
    )
    print("LOADED", loaded[:5])
    """
)


@pytest.mark.timeout(120)
def test_starting_the_tui_imports_neither_trio_nor_libp2p(raytui_home: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", TUI_START],
        capture_output=True,
        text=True,
        timeout=100,
        env={**os.environ, "RAYTUI_HOME": str(raytui_home)},
    )
    assert "COMPOSED True" in result.stdout, result.stdout + result.stderr
    assert "LOADED []" in result.stdout, result.stdout
