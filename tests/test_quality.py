"""The code stays clean: ruff (lint and format), mypy, and the import-linter contracts in pyproject.toml.

mypy and import-linter look for the ``toolwatch`` package on disk, but setuptools assembles it from
several top-level folders (``package-dir``). Both therefore read a tree of file links generated from that
mapping, so the tree they check is exactly the one that is installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.package_tree import PYPROJECT, ROOT, package_tree


def run(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd, env={**os.environ, **(env or {})})


def test_every_package_folder_is_mapped() -> None:
    mapping = PYPROJECT["tool"]["setuptools"]["package-dir"]
    assert set(PYPROJECT["tool"]["setuptools"]["packages"]) == set(mapping)
    for folder in mapping.values():
        assert (ROOT / folder / "__init__.py").is_file(), folder


def test_ruff_clean() -> None:
    r = run(sys.executable, "-m", "ruff", "check", str(ROOT))
    assert r.returncode == 0, r.stdout + r.stderr


def test_ruff_format_clean() -> None:
    r = run(sys.executable, "-m", "ruff", "format", "--check", str(ROOT))
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_clean(tmp_path: Path) -> None:
    tree = package_tree(tmp_path / "tree")
    r = run(
        sys.executable,
        "-m",
        "mypy",
        "--config-file",
        str(ROOT / "pyproject.toml"),
        "--cache-dir",
        str(tmp_path / "cache"),
        "-p",
        "toolwatch",
        cwd=tree,
        env={"MYPYPATH": str(tree)},
    )
    assert r.returncode == 0, r.stdout[-5000:] + r.stderr[-2000:]


def test_import_contracts_hold(tmp_path: Path) -> None:
    tree = package_tree(tmp_path / "tree")
    lint = Path(sys.executable).with_name("lint-imports")
    r = run(str(lint), "--config", str(ROOT / "pyproject.toml"), "--no-cache", cwd=tree, env={"PYTHONPATH": str(tree)})
    assert r.returncode == 0, r.stdout[-5000:] + r.stderr[-2000:]
    assert "Contracts: 4 kept, 0 broken." in r.stdout
