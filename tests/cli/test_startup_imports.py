"""Which heavy libraries each command's start-up imports (a test of modules, not of time).

``dicomstation CMD --help`` (and ``GROUP SUB --help``) of every command must not import
pydicom, numpy, pynetdicom, httpx, highdicom, FastAPI, Dask, authlib, torch, Pydantic...:
they cost 0.1-0.7 s each, and the goal is every command started in under 0.3 s
(benchmarks/bench_startup.py measures it). ``load DIR --to x.nii`` of a classic
uncompressed series imports numpy only: no pydicom, highdicom, nibabel or Pydantic.

One probe process imports the CLI's entry point (what every command imports anyway),
then forks a child per command line; each child runs the command and reports the
heavy top-level packages it imported. The children start from the same modules as a
fresh ``dicomstation`` process would.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from dicomstation.cli.main import COMMANDS
from tests.volumes.synth import make_series

HEAVY = (
    "pydicom", "numpy", "pynetdicom", "httpx", "highdicom", "fastapi", "starlette", "uvicorn",
    "dask", "distributed", "authlib", "torch", "scipy", "PIL", "nibabel", "nrrd", "pydantic",
    "SimpleITK", "requests", "keyring", "sqlite3", "playwright", "jinja2", "cryptography", "rich",
)  # fmt: skip

#: Heavy packages a command's --help may still import (command -> packages, with the
#: reason in a comment). Empty: none may.
ALLOWED: dict[str, set[str]] = {}

_PROBE = r"""
import io, json, os, sys, contextlib
from dicomstation.cli.main import app
heavy = set(json.loads(sys.argv[1]))
for line in sys.stdin:
    argv = json.loads(line)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        sys.argv = ["dicomstation", *argv]
        out = io.StringIO()
        code = 0
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
                app()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        found = sorted({m.split(".")[0] for m in sys.modules} & heavy)
        os.write(write, json.dumps({"argv": argv, "code": code, "heavy": found,
                                    "out": out.getvalue()[:4000]}).encode())
        os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    os.waitpid(pid, 0)
    print(b"".join(chunks).decode(), flush=True)
"""


def _probe(command_lines: list[list[str]], env: dict[str, str]) -> dict[str, dict[str, object]]:
    """Run each command line in a forked child of one probe process; results by argv."""
    run = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(HEAVY)],
        input="".join(json.dumps(argv) + "\n" for argv in command_lines),
        capture_output=True, text=True, timeout=300, check=True, env=env,
    )  # fmt: skip
    results = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert len(results) == len(command_lines), run.stderr[-2000:]
    return {" ".join(r["argv"]): r for r in results}


def _subcommands() -> list[list[str]]:
    lines: list[list[str]] = []
    for name, (module_name, _) in COMMANDS.items():
        app = typer.Typer()
        __import__(f"dicomstation.cli.{module_name}", fromlist=["register"]).register(app)
        command = typer.main.get_group(app).commands[name]
        lines.extend([name, sub] for sub in getattr(command, "commands", {}) or {})
    return lines


@pytest.fixture()
def env(tmp_path: Path) -> dict[str, str]:
    import os

    return {
        **os.environ,
        "DICOMSTATION_CONFIG": str(tmp_path / "settings.toml"),
        "DICOMSTATION_DB": str(tmp_path / "db"),
    }


@pytest.mark.skipif(sys.platform != "linux", reason="the probe forks")
def test_every_command_help_imports_no_heavy_library(env: dict[str, str]) -> None:
    lines = [["--help"], *([name, "--help"] for name in COMMANDS)]
    lines += [[*sub, "--help"] for sub in _subcommands()]
    results = _probe(lines, env)
    problems = {}
    for argv in lines:
        result = results[" ".join(argv)]
        assert result["code"] == 0, result
        assert "Usage" in str(result["out"]), result  # the help was really printed
        extra = set(result["heavy"]) - ALLOWED.get(argv[0], set())  # type: ignore[arg-type]
        if extra:
            problems[" ".join(argv)] = sorted(extra)
    assert problems == {}


@pytest.mark.skipif(sys.platform != "linux", reason="the probe forks")
def test_load_to_nifti_of_a_classic_series_imports_numpy_only(
    tmp_path: Path, env: dict[str, str]
) -> None:
    make_series(tmp_path / "series", n=5)
    out = tmp_path / "x.nii"
    results = _probe([["load", str(tmp_path / "series"), "--to", str(out)]], env)
    (result,) = results.values()
    assert result["code"] == 0, result
    assert out.stat().st_size == 352 + 5 * 12 * 10 * 2  # header + int16 voxels: really written
    assert result["heavy"] == ["numpy"]


@pytest.mark.skipif(sys.platform != "linux", reason="the probe forks")
def test_the_probe_sees_heavy_imports(tmp_path: Path, env: dict[str, str]) -> None:
    """Self-test: a command that needs pydicom is reported as importing it (a Number of
    Frames attribute sends the headers to pydicom: the fast reader gives up on it)."""
    make_series(tmp_path / "series", n=3, extra={"NumberOfFrames": 1})
    results = _probe([["load", str(tmp_path / "series"), "--list"]], env)
    (result,) = results.values()
    assert result["code"] == 0, result
    assert "pydicom" in result["heavy"]
