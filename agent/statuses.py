"""Run statuses: the words the agent writes, and which of them say a run has ended.

The one definition every part uses: the agent (what ``finish()`` keeps), the store (when a run
gets its end time) and the command line (how a status is coloured).
"""

from __future__ import annotations

RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
INTERRUPTED = "interrupted"  # KeyboardInterrupt (Ctrl-C) ended the program
TERMINATED = "terminated"  # SIGTERM (kill, SLURM, Kubernetes) ended the program

ENDED_WELL = frozenset({COMPLETED})
ENDED_BADLY = frozenset({FAILED, "crashed", "killed"})
STOPPED = frozenset({INTERRUPTED, TERMINATED})
TERMINAL_STATUSES = ENDED_WELL | ENDED_BADLY | STOPPED
