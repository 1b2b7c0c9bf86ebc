"""The installed ``toolwatch`` package as a tree of file links, for the tools that look for it on disk.

setuptools assembles ``toolwatch`` from several top-level folders (``package-dir`` in pyproject.toml), so
``lint-imports`` and ``mypy`` run from the repository root cannot find ``toolwatch.jobs`` and the other
stages. They read this tree instead (tests/test_quality.py does). By hand:

    python -m tests.package_tree lint-imports     # the import contracts
    python -m tests.package_tree mypy             # the type check, as the test runs it
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def package_tree(dest: Path) -> Path:
    """``dest/toolwatch/...`` laid out as installed, one link per source file (no linked folders: the
    import graph's walker does not follow them)."""
    mapping: dict[str, str] = PYPROJECT["tool"]["setuptools"]["package-dir"]
    for package, folder in mapping.items():
        target = dest.joinpath(*package.split("."))
        for source in (ROOT / folder).rglob("*"):
            if "__pycache__" in source.parts or not source.is_file():
                continue
            rel = source.relative_to(ROOT / folder)
            if rel.parts[0] in {m.split(".")[-1] for m in mapping if m.count(".") == package.count(".") + 1}:
                continue  # a sub-package mapped from a folder of its own
            link = target / rel
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(source)
    return dest


def main(tool: str) -> int:
    """Run ``lint-imports`` or ``mypy`` on a fresh tree, with the project's configuration."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = package_tree(Path(tmp) / "tree")
        bin_dir = Path(sys.executable).parent
        if tool == "lint-imports":
            args = [str(bin_dir / "lint-imports"), "--config", str(ROOT / "pyproject.toml"), "--no-cache"]
            return subprocess.call(args, cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)})
        if tool == "mypy":
            args = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), "-p", "toolwatch"]
            return subprocess.call(args, cwd=tree, env={**os.environ, "MYPYPATH": str(tree)})
    print(f"usage: python -m tests.package_tree lint-imports|mypy (not {tool!r})", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else ""))
