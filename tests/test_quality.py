"""ruff and mypy stay clean. mypy cannot follow setuptools' package-dir mapping, so it checks a tree of
symlinks laid out as the installed ``toolwatch`` package."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAPPED = {"proxy": "proxy", "analyzers": "analyzers", "schemas": "schemas"}


def package_tree(dest: Path) -> Path:
    pkg = dest / "toolwatch"
    pkg.mkdir(parents=True)
    for entry in (ROOT / "src" / "toolwatch").iterdir():
        if entry.name != "__pycache__":
            (pkg / entry.name).symlink_to(entry)
    for sub, folder in MAPPED.items():
        (pkg / sub).symlink_to(ROOT / folder)
    return dest


def test_ruff_clean() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "ruff", "check", str(ROOT)], capture_output=True, text=True, cwd=ROOT
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_clean(tmp_path: Path) -> None:
    tree = package_tree(tmp_path / "tree")
    env = {**os.environ, "MYPYPATH": str(tree)}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(tmp_path / "cache"),
            "-p",
            "toolwatch",
        ],
        capture_output=True,
        text=True,
        cwd=tree,
        env=env,
    )
    assert r.returncode == 0, r.stdout[-5000:] + r.stderr[-2000:]
