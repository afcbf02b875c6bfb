"""Send what lm-eval prints during an evaluation to a log file instead of the console.

lm-eval draws its own tqdm bars (some with no way to turn them off) and runs
``git describe`` through ``subprocess`` with the console as the child's stderr, which
prints ``fatal: not a git repository`` outside a repository. okapi-kit shows its own
progress, so during an evaluation both file descriptors 1 and 2 (what child processes
inherit) and ``sys.stdout`` / ``sys.stderr`` (what Python code writes to, also when a
test harness has replaced them) point at one log file in the work folder, which an
error message can then name.

The redirection is process-wide while it lasts: output of other threads goes to the
log too. okapi-kit evaluates one unit at a time, so nothing else is lost.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def output_to(log_path: Path) -> Iterator[Path]:
    """Within the block, stdout and stderr (Python's and the file descriptors') go to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w", encoding="utf-8", errors="replace") as log:
        saved: dict[int, int] = {}
        try:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):  # a closed or replaced stream
                    stream.flush()
            for fd in (1, 2):
                try:
                    saved[fd] = os.dup(fd)
                except OSError:  # no such descriptor (a detached process): nothing to redirect
                    continue
                os.dup2(log.fileno(), fd)
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                yield log_path
        finally:
            log.flush()
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
