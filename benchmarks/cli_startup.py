"""CLI start-up time: `okapi-kit --help` and `okapi-kit plugins` against the CLIs a user
would otherwise start (`trl --help`, `lm_eval --help`).

Each command runs in a fresh process, alternating, N times; the median wall time counts.
Run: python benchmarks/cli_startup.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import report  # noqa: E402

BIN = Path(sys.executable).parent


def _cmd(name: str, *args: str) -> list[str]:
    exe = BIN / name
    return [str(exe) if exe.exists() else (shutil.which(name) or name), *args]


COMMANDS = {
    "okapi-kit --help": _cmd("okapi-kit", "--help"),
    "okapi-kit plugins": _cmd("okapi-kit", "plugins", "--json"),
    "trl --help": _cmd("trl", "--help"),
    "lm_eval --help": _cmd("lm_eval", "--help"),
}


def time_once(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    times: dict[str, list[float]] = {k: [] for k in COMMANDS}
    for cmd in COMMANDS.values():  # warm the file cache once
        time_once(cmd)
    for _ in range(args.repeats):
        for name, cmd in COMMANDS.items():
            times[name].append(time_once(cmd))
    med = {k: statistics.median(v) for k, v in times.items()}
    for ours in ("okapi-kit --help", "okapi-kit plugins"):
        for peer in ("trl --help", "lm_eval --help"):
            report("cli_startup", ours.split()[-1].lstrip("-"), med[ours], med[peer], peer.split()[0], "s")


if __name__ == "__main__":
    main()
