"""The Python examples of README.md and docs/*.md type-check with ``mypy --strict``.

Every ```python block is written to its own module in a temporary folder and all
of them are checked in ONE mypy run (the project's configuration, a copy of the
checkout's mypy cache in the temporary folder, so only the examples are new),
together with the context-manager script of ``test_node_context``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.foundation.test_node_context import SCRIPT as NODE_SCRIPT

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
#: Optional third-party packages an example may use that the test venv lacks.
OPTIONAL = ("dask_jobqueue.*", "dask_kubernetes.*")


def _documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def snippets() -> dict[str, str]:
    """``module name -> code`` of every python block of the documents."""
    found: dict[str, str] = {}
    for doc in _documents():
        stem = re.sub(r"\W", "_", doc.stem.lower())
        for number, match in enumerate(BLOCK.finditer(doc.read_text(encoding="utf-8")), 1):
            line = doc.read_text(encoding="utf-8")[: match.start()].count("\n") + 2
            found[f"{stem}_{number}_line{line}"] = match.group(1)
    return found


def _config(tmp_path: Path) -> Path:
    """The project's mypy settings (its source path made absolute), plus optional packages."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    start = text.index("[tool.mypy]")
    following = re.search(r"(?m)^\[(?!\[?tool\.mypy)", text[start + 1 :])
    section = text[start : start + 1 + following.start()] if following else text[start:]
    section = re.sub(r"(?m)^packages = .*\n", "", section)
    section = re.sub(r"(?m)^mypy_path = .*$", f'mypy_path = "{ROOT / "src"}"', section)
    modules = ", ".join(f'"{m}"' for m in OPTIONAL)
    extra = f"\n[[tool.mypy.overrides]]\nmodule = [{modules}]\nignore_missing_imports = true\n"
    config = tmp_path / "pyproject.toml"
    config.write_text(section + extra, encoding="utf-8")
    return config


def _cache(tmp_path: Path) -> Path:
    """A copy of the checkout's mypy cache when there is one (the package is then not rechecked)."""
    cache = tmp_path / "mypy_cache"
    if (ROOT / ".mypy_cache").is_dir():
        shutil.copytree(ROOT / ".mypy_cache", cache, ignore=shutil.ignore_patterns("*.lock"))
    return cache


def test_the_readme_has_python_examples() -> None:
    readme = [name for name in snippets() if name.startswith("readme_")]
    assert readme, "README.md has no ```python example"
    assert any("find_studies" in snippets()[name] for name in readme)


def test_every_python_example_type_checks_under_mypy_strict(tmp_path: Path) -> None:
    folder = tmp_path / "examples"
    folder.mkdir()
    for name, code in snippets().items():
        (folder / f"{name}.py").write_text(code, encoding="utf-8")
    (folder / "node_context.py").write_text(NODE_SCRIPT, encoding="utf-8")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--config-file",
            str(_config(tmp_path)),
            "--cache-dir",
            str(_cache(tmp_path)),
            str(folder),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
