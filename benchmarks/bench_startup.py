"""Benchmark: start-up of every ``dicomstation`` command beside Python + numpy + pydicom.

Each probe runs in a fresh process (the installed ``dicomstation`` entry point), round-robin
``--repeat`` times; the table gives the median wall and CPU seconds (user + system, from
``RUSAGE_CHILDREN``) and the ratio of the wall time to the peer's,
``python -c "import numpy, pydicom"`` (what any Python DICOM tool pays before doing
anything). The goal is every command under 0.3 s; probes:

- ``dicomstation --help`` and ``dicomstation CMD --help`` for every command in the table
  of cli/main.py, and ``dicomstation GROUP SUB --help`` for every subcommand of a group;
- a real run of every command that can run without a peer, on empty state: ``db ls`` (the
  default database and ``--db``, table and JSON), ``db show`` of a missing UID, ``server
  list`` with no servers (table and JSON), ``auth show``, ``jobs list`` on an empty ledger,
  ``deid-key``, ``viewer status`` (not installed);
- a peer command's start-up up to its first contact with a peer or a file: ``query`` and
  ``fetch`` with no server configured, ``metadata`` of an unknown server, ``send`` and
  ``segment`` of a UID not in the database, ``load``/``run``/``deid`` of a missing path
  (arguments parsed, modules loaded, the one-line error printed).

``listen``, ``ui``, ``worker`` and ``demo`` serve until stopped; only their ``--help`` is timed.

Run: ``.venv/bin/python benchmarks/bench_startup.py [--repeat 5] [--quick]``
(``--quick``: top-level commands only).
"""

from __future__ import annotations

import argparse
import importlib
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import typer

from dicomstation.cli.main import COMMANDS

GOAL_S = 0.3
BIN = Path(sys.executable).with_name("dicomstation")


def _subcommands() -> list[list[str]]:
    """``[GROUP, SUB]`` for every subcommand of every command group."""
    probes: list[list[str]] = []
    for name, (module_name, _) in COMMANDS.items():
        app = typer.Typer()
        importlib.import_module(f"dicomstation.cli.{module_name}").register(app)
        command = typer.main.get_group(app).commands[name]
        probes.extend([name, sub] for sub in getattr(command, "commands", {}) or {})
    return probes


def probes(quick: bool, scratch: Path) -> list[tuple[str, list[str]]]:
    """(label, argv) of every probe; the peer first."""
    peer = [sys.executable, "-c", "import numpy, pydicom"]
    out: list[tuple[str, list[str]]] = [
        ("python -c 'import numpy, pydicom' (peer)", peer),
        ("python -c pass", [sys.executable, "-c", "pass"]),
        ("dicomstation --help", [str(BIN), "--help"]),
    ]
    out += [(f"{name} --help", [str(BIN), name, "--help"]) for name in COMMANDS]
    if not quick:
        out += [(f"{' '.join(s)} --help", [str(BIN), *s, "--help"]) for s in _subcommands()]
    return out + [(label, [str(BIN), *argv]) for label, argv, _ in runs(scratch)]


def runs(scratch: Path) -> list[tuple[str, list[str], int]]:
    """(label, arguments, expected exit code) of the real runs: cheap commands on empty
    state, peer commands up to their first contact (no server configured, no UID stored)."""
    db = ["--db", str(scratch / "db")]
    missing = str(scratch / "missing")
    uid = "1.2.826.0.1.3680043.8.498.1"
    return [
        ("db ls (empty default database)", ["db", "ls"], 0),
        ("db ls --db (empty)", ["db", "ls", *db], 0),
        ("db ls --json (empty)", ["db", "ls", "--json", *db], 0),
        ("db show UID (not in the database)", ["db", "show", uid, *db], 3),
        ("server list (no servers)", ["server", "list"], 0),
        ("server list --json (no servers)", ["server", "list", "--json"], 0),
        ("auth show (none set)", ["auth", "show"], 0),
        ("jobs list (empty ledger)", ["jobs", "list", *db], 0),
        ("deid-key (not set)", ["deid-key"], 0),
        ("viewer status (not installed)", ["viewer", "status", "--to", f"{scratch}/ohif"], 1),
        ("query (error: no server)", ["query"], 2),
        ("fetch UID (error: no server)", ["fetch", uid, *db], 2),
        ("metadata (error: unknown server)", ["metadata", "nope", uid], 2),
        ("send UID (error: not in the database)", ["send", "nope", uid, *db], 3),
        ("segment UID (error: not in the database)",
         ["segment", uid, "--threshold", "0", "1", *db], 3),
        ("load MISSING (error)", ["load", missing], 2),
        ("run MISSING.toml (error)", ["run", f"{missing}.toml", *db], 2),
        ("deid MISSING (error)", ["deid", missing, "--to", f"{scratch}/out"], 2),
    ]  # fmt: skip


def check_runs(scratch: Path, env: dict[str, str]) -> None:
    """Run each real run once (also the warm-up); a run that exits otherwise than expected
    would time the wrong thing (a usage error, a crash): say so and stop."""
    wrong = []
    for label, argv, expected in runs(scratch):
        done = subprocess.run(
            [str(BIN), *argv], env=env, capture_output=True, text=True, check=False, timeout=120
        )
        if done.returncode != expected:
            wrong.append(f"{label}: exit {done.returncode}, not {expected}: {done.stderr[-300:]}")
    if wrong:
        sys.exit("probes that do not run as intended:\n" + "\n".join(wrong))


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run of ``argv``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, capture_output=True, check=False, env=env, timeout=120)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    """Run every probe ``--repeat`` times round-robin; print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5, help="runs per probe; medians printed")
    parser.add_argument("--quick", action="store_true", help="top-level commands only")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="bench_startup_") as tmp:
        scratch = Path(tmp)
        # A settings file of its own: no user settings or keyring is read.
        env = {**os.environ, "DICOMSTATION_CONFIG": str(scratch / "settings.toml")}
        env["DICOMSTATION_DB"] = str(scratch / "default-db")
        table = probes(args.quick, scratch)
        times: dict[str, list[tuple[float, float]]] = {label: [] for label, _ in table}
        check_runs(scratch, env)  # also creates the empty databases and ledger once
        for _ in range(args.repeat):
            for label, argv in table:
                times[label].append(run_once(argv, env))
    _print(times)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


def _print(runs: dict[str, list[tuple[float, float]]]) -> None:
    medians = {
        label: (statistics.median(w for w, _ in r), statistics.median(c for _, c in r))
        for label, r in runs.items()
    }
    peer_label = next(iter(medians))
    peer_wall, peer_cpu = medians[peer_label]
    print(
        f"\n{'probe':<44}{'wall s':>8}{'cpu s':>8}{'wall/peer':>11}{'cpu/peer':>10}"
        f"  goal < {GOAL_S} s (wall)"
    )
    slowest = ("", 0.0)
    for label, (wall, cpu) in medians.items():
        mark = "" if label.startswith("python") else ("ok" if wall < GOAL_S else "OVER")
        print(
            f"{label:<44}{wall:>8.3f}{cpu:>8.3f}{wall / peer_wall:>10.2f}x"
            f"{cpu / peer_cpu:>9.2f}x  {mark}"
        )
        if not label.startswith("python") and wall > slowest[1]:
            slowest = (label, wall)
    commands = [m for label, m in medians.items() if not label.startswith("python")]
    over = sum(1 for wall, _ in commands if wall >= GOAL_S)
    cpu_over = sum(1 for _, cpu in commands if cpu >= GOAL_S)
    print(
        f"\nratios: slowest command ({slowest[0]}) / peer = {slowest[1] / peer_wall:.2f}; "
        f"median command / peer = {statistics.median(w for w, _ in commands) / peer_wall:.2f}; "
        f"{len(commands) - over} of {len(commands)} probes under {GOAL_S} s wall, "
        f"{len(commands) - cpu_over} under {GOAL_S} s cpu"
    )
    over_labels = [label for label, (wall, _) in medians.items() if not label.startswith("python")]
    over_labels = [label for label in over_labels if medians[label][0] >= GOAL_S]
    print(f"over {GOAL_S} s wall: {', '.join(over_labels) if over_labels else 'none'}")
    print("medians of --repeat round-robin runs; wall s: whole process; cpu s: user + system")


if __name__ == "__main__":
    main()
