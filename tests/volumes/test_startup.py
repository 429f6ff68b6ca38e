"""CLI start-up: a bare ``dicomstation --help`` imports no heavy library, and the lazy command
table (cli/main.py) names exactly what each command module registers."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import typer

from dicomstation.cli.main import COMMANDS

CLI = Path(__file__).resolve().parents[2] / "src" / "dicomstation" / "cli"
HEAVY = (
    "numpy", "pydicom", "highdicom", "httpx", "pynetdicom", "fastapi", "starlette", "uvicorn",
    "scipy", "PIL", "nibabel", "dask", "distributed", "rich", "sqlite3",
)  # fmt: skip

_PROBE = """
import json, sys
sys.argv = ["dicomstation", *json.loads(sys.argv[1])]
from dicomstation.cli.main import app
try:
    app()
except SystemExit as exc:
    code = exc.code
heavy = json.loads(sys.argv[2]) if len(sys.argv) > 2 else []
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & set(heavy))))
"""


def _imported(args: list[str]) -> tuple[list[str], str]:
    """Heavy top-level packages imported by ``dicomstation ARGS`` in a fresh interpreter."""
    run = subprocess.run(
        [sys.executable, "-c", _PROBE.replace("sys.argv[2]", repr(json.dumps(HEAVY))),
         json.dumps(args)],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    *output, last = run.stdout.strip().splitlines()
    return json.loads(last), "\n".join(output)


def test_bare_help_imports_no_heavy_module_and_lists_every_command() -> None:
    heavy, output = _imported(["--help"])
    assert heavy == []
    for name in COMMANDS:
        assert f"  {name} " in output, name


def test_load_help_does_not_import_the_loader() -> None:
    heavy, output = _imported(["load", "--help"])
    assert "--equidistant" in output
    assert not {"highdicom", "scipy", "nibabel", "fastapi", "pynetdicom"} & set(heavy), heavy


def test_command_table_matches_the_modules() -> None:
    modules = sorted(p.stem for p in CLI.glob("*_cmds.py"))
    assert sorted({module for module, _ in COMMANDS.values()}) == modules
    for module_name in modules:
        app = typer.Typer()
        importlib.import_module(f"dicomstation.cli.{module_name}").register(app)
        registered = {
            typer.main.get_command_name(c.callback.__name__) if c.name is None else c.name
            for c in app.registered_commands
            if c.callback is not None
        }
        registered |= {g.name for g in app.registered_groups if g.name}
        listed = {name for name, (module, _) in COMMANDS.items() if module == module_name}
        assert registered == listed, module_name
