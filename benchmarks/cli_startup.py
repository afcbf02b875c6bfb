"""CLI start-up: okapi-kit's commands against the same commands of the CLIs a user would
otherwise start (trl, lm-eval), measured the same way.

Like with like:
- every command is a console script of the same virtual environment, run by the same
  interpreter (``sys.executable SCRIPT ARGS``, so no shebang or launcher differs), with the
  same environment (Hub offline), from the same empty working folder, output discarded;
- each command is run once to warm the file cache, then ``--repeats`` times, interleaved
  in a rotating order so that machine drift falls on all of them alike; the median counts;
- only commands doing the same work are paired: ``--help`` with ``--help`` (parse the
  arguments, print usage) and ``--version`` with ``--version`` (lm-eval has none);
- ``python -c pass`` gives the interpreter's own floor, and one ``-X importtime`` run per
  command shows where the rest goes.

``okapi-kit plugins`` (load every installed plugin, list its components) has no peer doing
the same work: lm-eval's listing, ``lm_eval ls tasks``, indexes thousands of task YAMLs.
It is reported on its own, against the floor.

Run: python benchmarks/cli_startup.py [--repeats 11]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import import_breakdown, report, run_process  # noqa: E402

BIN = Path(sys.executable).parent


def script(name: str) -> str:
    """The console script ``name`` of this environment (the one ``sys.executable`` belongs to)."""
    path = BIN / name
    if not path.is_file():
        found = shutil.which(name)
        sys.exit(f"{name} is not installed next to {sys.executable}" + (f" (found {found})" if found else ""))
    return str(path)


def commands() -> dict[str, list[str]]:
    py = sys.executable
    return {
        "python -c pass": [py, "-c", "pass"],
        "okapi-kit --help": [py, script("okapi-kit"), "--help"],
        "trl --help": [py, script("trl"), "--help"],
        "lm_eval --help": [py, script("lm_eval"), "--help"],
        "okapi-kit --version": [py, script("okapi-kit"), "--version"],
        "trl --version": [py, script("trl"), "--version"],
        "okapi-kit plugins": [py, script("okapi-kit"), "plugins", "--json"],
    }


PAIRS = [  # (ours, peer): the same work
    ("okapi-kit --help", "trl --help"),
    ("okapi-kit --help", "lm_eval --help"),
    ("okapi-kit --version", "trl --version"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--breakdown", type=int, default=6, help="root packages shown per command (0: none)")
    args = parser.parse_args()
    cmds = commands()
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    names = list(cmds)
    walls: dict[str, list[float]] = {k: [] for k in names}
    rss: dict[str, list[float]] = {k: [] for k in names}
    with tempfile.TemporaryDirectory() as cwd:
        for cmd in cmds.values():  # warm the file cache and the bytecode caches
            run_process(cmd, env=env, cwd=cwd)
        for i in range(args.repeats):
            for name in names[i % len(names):] + names[:i % len(names)]:
                run = run_process(cmds[name], env=env, cwd=cwd)
                walls[name].append(run.wall_s)
                rss[name].append(run.peak_rss_mb)
        breakdown = {name: import_breakdown(cmds[name], env=env, cwd=cwd, top=args.breakdown)
                     for name in names if args.breakdown and name != "python -c pass"}

    floor = statistics.median(walls["python -c pass"])
    print(f"{'command':<22}{'median s':>9}{'min s':>8}{'max s':>8}{'- floor':>9}{'peak RSS MB':>13}")
    for name in names:
        w = walls[name]
        med = statistics.median(w)
        print(f"{name:<22}{med:>9.3f}{min(w):>8.3f}{max(w):>8.3f}{med - floor:>9.3f}"
              f"{statistics.median(rss[name]):>13.1f}")
    print(f"({args.repeats} runs each, interleaved; python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
    print()
    for ours, peer in PAIRS:
        metric = ours.split()[-1].lstrip("-")
        report("cli_startup", metric, statistics.median(walls[ours]), statistics.median(walls[peer]),
               peer.split()[0], "s")
        report("cli_startup", metric + "_rss", statistics.median(rss[ours]), statistics.median(rss[peer]),
               peer.split()[0], "MB")
    if breakdown:
        print("\nimport time by root package (one -X importtime run; own time of its modules, s):")
        for name, (total, rows) in breakdown.items():
            print(f"  {name:<22}all {total:.3f}: " + ", ".join(f"{pkg} {sec:.3f}" for pkg, sec in rows))


if __name__ == "__main__":
    main()
