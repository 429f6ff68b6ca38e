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
from typing import Any

import pytest
import typer

from dicomstation.cli.main import COMMANDS
from tests.volumes.synth import make_series

HEAVY = (
    "pydicom", "numpy", "pynetdicom", "httpx", "highdicom", "fastapi", "starlette", "uvicorn",
    "dask", "distributed", "authlib", "torch", "scipy", "PIL", "nibabel", "nrrd", "pydantic",
    "SimpleITK", "requests", "keyring", "sqlite3", "playwright", "jinja2", "cryptography", "rich",
    "platformdirs", "tomli_w", "webbrowser",
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
        out, err = io.StringIO(), io.StringIO()
        code = 0
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                app()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        found = sorted({m.split(".")[0] for m in sys.modules} & heavy)
        own = sorted(m for m in sys.modules if m.startswith("dicomstation"))
        os.write(write, json.dumps({"argv": argv, "code": code, "heavy": found, "own": own,
                                    "out": out.getvalue()[:4000],
                                    "err": err.getvalue()[:4000]}).encode())
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
def _fresh_json(code: str) -> Any:
    """What ``code``, run in a fresh interpreter, prints as JSON."""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)  # fmt: skip
    return json.loads(run.stdout)


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


#: What ``server ...``/``auth ...`` --help may import of the package: the CLI's entry point,
#: the command module and the modules every command shares; the settings, their config
#: classes, the secret store and the option handling are imported by the commands that use
#: them (0.1 s between them).
SETTINGS_HELP_OWN = {
    "dicomstation", "dicomstation.errors", "dicomstation.cli", "dicomstation.cli.main",
    "dicomstation.cli.lazy", "dicomstation.cli.fastparams", "dicomstation.cli.common",
    "dicomstation.cli.settings_cmds", "dicomstation.cli.oidc_login",
}  # fmt: skip


@pytest.mark.skipif(sys.platform != "linux", reason="the probe forks")
def test_server_and_auth_help_import_only_their_command_module(env: dict[str, str]) -> None:
    lines = [["server", "--help"], ["auth", "--help"]]
    lines += [[*sub, "--help"] for sub in _subcommands() if sub[0] in ("server", "auth")]
    assert len(lines) >= 10  # every subcommand of both groups
    results = _probe(lines, env)
    problems = {}
    for argv in lines:
        result = results[" ".join(argv)]
        assert result["code"] == 0 and "Usage" in str(result["out"]), result
        extra = set(result["own"]) - SETTINGS_HELP_OWN  # type: ignore[arg-type]
        if extra or result["heavy"]:
            problems[" ".join(argv)] = sorted(extra | set(result["heavy"]))  # type: ignore[arg-type]
    assert problems == {}


@pytest.mark.skipif(sys.platform != "linux", reason="the probe forks")
def test_server_list_imports_neither_httpx_nor_rich_without_servers(env: dict[str, str]) -> None:
    results = _probe([["server", "list"], ["server", "list", "--json"]], env)
    plain, as_json = results["server list"], results["server list --json"]
    assert plain["code"] == 0 and "no servers configured" in str(plain["out"]), plain
    assert as_json["code"] == 0 and json.loads(str(as_json["out"])) == [], as_json
    assert plain["heavy"] == [] and as_json["heavy"] == []
    assert "dicomstation.settings" in plain["own"]  # the settings were really read


def _add_server(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dicomstation.cli.main", "server", "add", *argv],
        input="pw\n", capture_output=True, text=True, timeout=120, check=False, env=env,
    )  # fmt: skip


@pytest.mark.skipif(sys.platform != "linux", reason="the probe forks")
def test_server_list_of_a_configured_server_imports_rich_only(env: dict[str, str]) -> None:
    env = {**env, "DICOMSTATION_KEYRING": "0"}  # secrets in the test's own file
    added = _add_server(env, "pacs", "--url", "https://pacs.example/dicom-web", "--user", "ann",
                        "--password-stdin")  # fmt: skip
    assert added.returncode == 0, added.stderr
    results = _probe([["server", "list"], ["server", "list", "--json"]], env)
    (row,) = json.loads(str(results["server list --json"]["out"]))
    assert (row["name"], row["address"], row["auth"]) == (
        "pacs", "https://pacs.example/dicom-web", "user ann"
    )  # fmt: skip
    result = results["server list"]
    assert result["code"] == 0 and "pacs" in str(result["out"]), result
    assert result["heavy"] == ["rich"]  # the table; no httpx, no keyring


def test_server_list_never_shows_a_url_password_of_a_hand_edited_file(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """server list prints stored URLs as they are: the settings refuse one with a password."""
    Path(env["DICOMSTATION_CONFIG"]).write_text(
        '[servers.pacs]\nprotocol = "dicomweb"\nurl = "https://ann:s3cret@pacs.example/dw"\n'
    )
    run = subprocess.run(
        [sys.executable, "-m", "dicomstation.cli.main", "server", "list"],
        capture_output=True, text=True, timeout=120, check=False, env=env,
    )  # fmt: skip
    assert run.returncode == 2, run
    assert "pacs" in run.stderr and "user/password" in run.stderr
    assert "s3cret" not in run.stdout + run.stderr


@pytest.mark.skipif(sys.platform != "linux", reason="the probe forks")
def test_db_ls_imports_neither_pydicom_nor_numpy(tmp_path: Path, env: dict[str, str]) -> None:
    """Listing the index (empty, and with a series in it) reads SQLite, not DICOM files."""
    from dicomstation.database import Database

    empty, full = tmp_path / "empty", tmp_path / "full"
    make_series(tmp_path / "series", n=3)
    with Database.open(full) as db:
        assert len(db.import_path(tmp_path / "series", workers=1).succeeded) == 3
    lines = [
        ["db", "ls", "--db", str(empty)],
        ["db", "ls", "--db", str(empty), "--json"],
        ["db", "ls"],  # the default database (DICOMSTATION_DB)
        ["db", "show", "1.2.3", "--db", str(empty)],
        ["db", "ls", "--db", str(full), "--level", "series"],
    ]
    results = _probe(lines, env)
    for argv in lines[:3]:
        result = results[" ".join(argv)]
        assert result["code"] == 0, result
        assert result["heavy"] == ["sqlite3"], result
    assert "no matches" in str(results[" ".join(lines[0])]["out"])
    assert json.loads(str(results[" ".join(lines[1])]["out"])) == []
    assert (Path(env["DICOMSTATION_DB"]) / "index.sqlite").is_file()
    missing = results[" ".join(lines[3])]
    assert missing["code"] == 3 and missing["heavy"] == ["sqlite3"], missing
    listed = results[" ".join(lines[4])]
    assert listed["code"] == 0 and "3" in str(listed["out"]), listed  # 3 instances
    assert listed["heavy"] == ["rich", "sqlite3"], listed


def test_the_database_package_imports_no_pydicom() -> None:
    """``import dicomstation.database`` (and its public names) in a fresh interpreter."""
    code = (
        "import json, sys\n"
        "from dicomstation.database import Database\n"
        "import dicomstation.database.importer, dicomstation.database.scanner\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    loaded = set(_fresh_json(code))
    assert "dicomstation" in loaded
    assert loaded & {"pydicom", "numpy", "multiprocessing", "concurrent"} == set()


@pytest.mark.skipif(sys.platform != "linux", reason="the probe forks")
def test_usage_errors_are_plain_and_import_no_heavy_library(env: dict[str, str]) -> None:
    """A mistyped command line exits 2 at once: click's plain message, no rich panel."""
    lines = [["nosuch"], ["query", "--no-such-option"], ["segment", "1.2.3"], ["db", "nosuch"]]
    results = _probe(lines, env)
    for argv in lines:
        result = results[" ".join(argv)]
        assert result["code"] == 2, result
        assert result["heavy"] == [], result


@pytest.mark.skipif(sys.platform != "linux", reason="the probe forks")
def test_jobs_list_reads_the_ledger_only(tmp_path: Path, env: dict[str, str]) -> None:
    """``jobs list`` imports the ledger, not the steps (numpy, pydicom, highdicom, scipy)."""
    db = ["--db", str(tmp_path / "db")]
    lines = [["jobs", "list", *db], ["jobs", "list", "--json", *db]]
    results = _probe(lines, env)
    plain, as_json = (results[" ".join(argv)] for argv in lines)
    assert plain["code"] == 0 and "no jobs" in str(plain["out"]), plain
    assert as_json["code"] == 0 and json.loads(str(as_json["out"])) == [], as_json
    assert (tmp_path / "db" / "jobs.sqlite").is_file()  # the ledger was really opened
    assert plain["heavy"] == ["sqlite3"] and as_json["heavy"] == ["sqlite3"]
    assert "dicomstation.pipeline.steps" not in plain["own"]


@pytest.mark.skipif(sys.platform != "linux", reason="the probe forks")
def test_send_without_deid_imports_no_deid_machinery(tmp_path: Path, env: dict[str, str]) -> None:
    """``send`` (no --deid) of a UID not in the database: the one-line error, no pydicom."""
    argv = ["send", "nowhere", "1.2.826.0.1.3680043.8.498.1", "--db", str(tmp_path / "db")]
    (result,) = _probe([argv], env).values()
    assert result["code"] == 3, result
    assert result["heavy"] == ["sqlite3"], result


def test_the_pipeline_ledger_imports_no_step_library() -> None:
    """``import dicomstation.pipeline.ledger`` in a fresh interpreter; the package's public
    names still import (lazily) and are the objects of their modules."""
    code = (
        "import json, sys\n"
        "from dicomstation.pipeline.ledger import LEDGER_NAME, Ledger\n"
        "before = sorted({m.split('.')[0] for m in sys.modules})\n"
        "import dicomstation.pipeline as p, dicomstation.pipeline.driver as d\n"
        "from dicomstation.pipeline import Ledger as L2, Pipeline, run_pipeline\n"
        "ok = [L2 is Ledger, p.LEDGER_NAME == d.LEDGER_NAME == LEDGER_NAME,\n"
        "      all(hasattr(p, n) for n in p.__all__), set(p.__all__) <= set(dir(p))]\n"
        "print(json.dumps({'before': before, 'ok': ok}))"
    )
    result = _fresh_json(code)
    assert result["ok"] == [True, True, True, True]
    assert set(result["before"]) & {"numpy", "pydicom", "highdicom", "scipy", "PIL"} == set()


@pytest.mark.skipif(sys.platform != "linux", reason="the probe forks")
def test_viewer_status_imports_no_web_framework(tmp_path: Path, env: dict[str, str]) -> None:
    """``viewer status`` looks for the installed OHIF: no FastAPI, Starlette or Pydantic."""
    (result,) = _probe([["viewer", "status", "--to", str(tmp_path / "ohif")]], env).values()
    assert result["code"] == 1 and "not installed" in str(result["out"]), result
    assert set(result["heavy"]) <= {"rich", "platformdirs"}, result  # the line; the data dir
    assert "dicomstation.web.app" not in result["own"]


#: Modules of the package that mean the heavy work began (the steps, the builders, the
#: processing, the de-identifier); none may be imported before a command knows it has work.
WORK_MODULES = (
    "dicomstation.pipeline.steps", "dicomstation.pipeline.builtin_exports",
    "dicomstation.pipeline.segmenters", "dicomstation.export.", "dicomstation.processing.",
    "dicomstation.deid.engine", "dicomstation.deid.files", "dicomstation.deid.config",
    "dicomstation.volumes.",
)  # fmt: skip


def _work_modules(result: dict[str, object]) -> list[str]:
    return [m for m in result["own"] if m.startswith(WORK_MODULES)]  # type: ignore[attr-defined]


@pytest.mark.skipif(sys.platform != "linux", reason="the probe forks")
def test_run_segment_and_deid_fail_on_bad_input_before_the_heavy_libraries(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """``run`` of a missing file, ``segment`` of a UID not in the database (or with an
    unknown ``--send`` server) and ``deid`` of a missing path: the one-line error naming
    what is wrong, and neither pydicom, numpy, highdicom nor scipy imported for it."""
    db = ["--db", str(tmp_path / "db")]
    uid, missing = "1.2.826.0.1.3680043.8.498.1", str(tmp_path / "missing")
    series, out = str(tmp_path / "series"), str(tmp_path / "out")
    make_series(Path(series), n=2)
    segment = ["segment", uid, "--threshold", "0", "1", *db]
    cases = {  # argv -> (exit code, what the error names, heavy modules allowed)
        ("run", f"{missing}.toml", *db): (2, f"{missing}.toml", set()),
        tuple(segment): (3, uid, {"sqlite3"}),
        (*segment, "--send", "nowhere"): (2, "'nowhere'", set()),
        (*segment, "--seed", "1,2"): (2, "'1,2'", set()),
        ("deid", missing, "--to", out): (2, missing, set()),
        ("deid", missing, "--key-file", missing): (2, missing, set()),
        ("deid", series, missing, "--to", out): (2, missing, set()),  # nothing half-done
        ("deid", series, "--to", out): (2, "no de-identification key", set()),
    }
    results = _probe([list(argv) for argv in cases], env)
    for argv, (code, named, allowed) in cases.items():
        result = results[" ".join(argv)]
        assert result["code"] == code, result
        (line,) = str(result["err"]).splitlines()  # one line
        assert line.startswith("error: ") and named in line, result
        assert set(result["heavy"]) <= allowed, result  # type: ignore[arg-type]
        assert _work_modules(result) == [], result
    assert not (tmp_path / "out").exists()  # the deid wrote nothing


@pytest.mark.skipif(sys.platform != "linux", reason="the probe forks")
def test_the_probe_sees_the_work_modules_of_a_real_segment(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """Self-test: a ``segment`` of a stored series imports the steps, processing and the
    builders (the test above would see them)."""
    from dicomstation.database import Database
    from dicomstation.models import Level, Query
    from tests.export.synthetic import ct_series, phantom, write_series

    files = write_series(ct_series(phantom(spheres=1)), tmp_path / "series")
    with Database.open(tmp_path / "db") as db:
        assert len(db.import_path(files, workers=1).succeeded) == len(files)
        (series,) = db.find(Query(Level.SERIES))
    db_option = ["--db", str(tmp_path / "db")]
    argv = ["segment", series.series_uid, "--threshold", "200", "3000", *db_option]
    (result,) = _probe([argv], env).values()
    assert result["code"] == 0, result
    assert "seg: series" in str(result["out"]), result
    assert {"highdicom", "scipy", "pydicom", "numpy"} <= set(result["heavy"]), result  # type: ignore[arg-type]
    work = _work_modules(result)
    assert "dicomstation.processing.masks" in work and "dicomstation.export.seg" in work


def test_export_processing_and_deid_packages_export_lazily() -> None:
    """``import dicomstation.export, .processing, .deid`` and the export registry in a fresh
    interpreter import no pydicom, numpy, highdicom or scipy; every public name still
    imports, is the object of its module and is listed by ``dir``; unknown names fail."""
    code = (
        "import json, sys, importlib\n"
        "import dicomstation.export, dicomstation.processing, dicomstation.deid\n"
        "import dicomstation.pipeline.exports, dicomstation.pipeline.definition\n"
        "before = sorted({m.split('.')[0] for m in sys.modules})\n"
        "ok = {}\n"
        "for pkg in ('dicomstation.export', 'dicomstation.processing', 'dicomstation.deid'):\n"
        "    p = importlib.import_module(pkg)\n"
        "    wrong = [n for n in p.__all__ if getattr(p, n) is not getattr(\n"
        "        importlib.import_module(f'{pkg}.{p._EXPORTS[n]}'), n)]\n"
        "    try:\n"
        "        p.no_such_name\n"
        "        missing = False\n"
        "    except AttributeError:\n"
        "        missing = True\n"
        "    ok[pkg] = [wrong == [], set(p.__all__) == set(p._EXPORTS),\n"
        "               set(p.__all__) <= set(dir(p)), missing]\n"
        "from dicomstation.export import build_seg\n"
        "from dicomstation.processing import SegmentStatistics\n"
        "from dicomstation.deid import DeidConfig\n"
        "print(json.dumps({'before': before, 'ok': ok}))"
    )
    result = _fresh_json(code)
    assert result["ok"] == {pkg: [True] * 4 for pkg in result["ok"]} and len(result["ok"]) == 3
    heavy = {"numpy", "pydicom", "highdicom", "scipy", "skimage", "PIL"}
    assert set(result["before"]) & heavy == set()


def test_an_export_kind_of_ones_own_is_used_without_the_builtins() -> None:
    """A new export kind is one registration, found without importing the built-in
    builders (highdicom); naming a built-in imports them; a replaced built-in stays
    replaced once the built-ins are loaded."""
    code = (
        "import json, sys\n"
        "from dicomstation.pipeline.exports import ExportSpec, export_kind, export_kinds\n"
        "from dicomstation.pipeline.exports import register_export_kind\n"
        "register_export_kind(ExportSpec('Mine', lambda request: [], 5))\n"
        "mine = export_kind('MINE')\n"
        "out = [mine.name, mine.series_offset, 'highdicom' in sys.modules]\n"
        "seg = export_kind('seg')\n"
        "out += [seg.name, seg.series_offset, 'highdicom' in sys.modules]\n"
        "register_export_kind(ExportSpec('SC', lambda request: [], 7))\n"
        "out += [export_kind('sc').series_offset, 'mine' in export_kinds()]\n"
        "print(json.dumps(out))"
    )
    assert _fresh_json(code) == ["Mine", 5, False, "seg", 200, True, 7, True]
