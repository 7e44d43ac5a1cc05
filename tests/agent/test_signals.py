"""How a signal ends a training process: SIGTERM gives ``terminated``, Ctrl-C ``interrupted``.

Each test runs a script in a subprocess (offline, into a data dir), waits until it printed its
run id, signals it, and reads the run back from the store.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aquarium.agent.statuses import ENDED_BADLY, ENDED_WELL, STOPPED, TERMINAL_STATUSES
from aquarium.collector import Store

STARTED = """
import signal, sys
import aquarium.agent as aq
{before}
run = aq.init(experiment="signals", mode="offline", data_dir=sys.argv[1])
for i in range(100):
    aq.log({{"x": float(i)}})
print(run.id, flush=True)
{after}
"""


def start(tmp_path: Path, before: str = "", after: str = "signal.pause()") -> tuple[subprocess.Popen[str], str]:
    """The script running, logged 100 points and waiting; returns it and its run id."""
    code = STARTED.format(before=before, after=after)
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # as in a terminal: a shell's background job (`cmd &`) starts with SIGINT ignored, and
        # Python then installs no KeyboardInterrupt handler (the Ctrl-C test would wait forever)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    run_id = process.stdout.readline().strip() if process.stdout else ""
    if not run_id:
        process.kill()
        pytest.fail(f"the script did not start: {process.communicate(timeout=60)[1]}")
    return process, run_id


def ended(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()  # never left running into later tests
        process.communicate()
        raise
    return process.returncode, out, err


def stored(data_dir: Path, run_id: str) -> dict[str, Any]:
    with Store(data_dir) as store:
        store.ingest_spool()
        return store.get_run(run_id)


def test_sigterm_finishes_the_run_as_terminated_and_still_kills_the_process(tmp_path: Path) -> None:
    process, run_id = start(tmp_path)
    process.send_signal(signal.SIGTERM)
    returncode, _, err = ended(process)
    assert returncode == -signal.SIGTERM, err
    run = stored(tmp_path, run_id)
    assert run["status"] == "terminated" and run["ended_at"] is not None
    assert run["metrics"]["x"]["count"] == 100


def test_sigterm_in_the_middle_of_a_logging_loop_stores_a_clean_prefix(tmp_path: Path) -> None:
    loop = "i = 100\nwhile True:\n    aq.log({'x': float(i), 'y': -float(i)})\n    i += 1\n    if i == 200:\n"
    process, run_id = start(tmp_path, after=loop + "        print('looping', flush=True)")
    assert process.stdout is not None and process.stdout.readline().strip() == "looping"
    process.send_signal(signal.SIGTERM)
    returncode, _, err = ended(process)
    assert returncode == -signal.SIGTERM, err
    assert stored(tmp_path, run_id)["status"] == "terminated"
    with Store(tmp_path) as store:
        store.ingest_spool()
        x, y = store.read_series(run_id, "x"), store.read_series(run_id, "y")
    n = len(x.steps)  # the calls that returned before the signal: each one whole, none twice
    assert x.steps.tolist() == list(range(n)) and x.values.tolist() == [float(i) for i in range(n)]
    assert y.steps.tolist() == list(range(100, n)) and y.values.tolist() == [-float(i) for i in range(100, n)]


def test_a_handler_installed_before_init_is_chained_and_decides_how_the_process_ends(tmp_path: Path) -> None:
    theirs = "signal.signal(signal.SIGTERM, lambda signum, frame: (print('theirs', signum, flush=True), sys.exit(3)))"
    process, run_id = start(tmp_path, before=theirs)
    process.send_signal(signal.SIGTERM)
    returncode, out, err = ended(process)
    assert returncode == 3 and out.split() == ["theirs", str(int(signal.SIGTERM))], err
    run = stored(tmp_path, run_id)
    assert run["status"] == "terminated" and run["metrics"]["x"]["count"] == 100


def test_a_handler_that_lets_training_go_on_keeps_the_run_open(tmp_path: Path) -> None:
    before = "stop = []\nsignal.signal(signal.SIGTERM, lambda signum, frame: stop.append(signum))"
    after = "while not stop:\n    signal.pause()\naq.log({'x': 100.0})\nprint(run.finish().points, flush=True)"
    process, run_id = start(tmp_path, before=before, after=after)
    process.send_signal(signal.SIGTERM)
    returncode, out, err = ended(process)
    assert returncode == 0 and out.split() == ["101"], err
    run = stored(tmp_path, run_id)
    assert run["status"] == "terminated" and run["metrics"]["x"]["count"] == 101


def test_ctrl_c_ends_the_run_as_interrupted(tmp_path: Path) -> None:
    process, run_id = start(tmp_path)
    process.send_signal(signal.SIGINT)
    returncode, _, err = ended(process)
    assert returncode == -signal.SIGINT and "KeyboardInterrupt" in err
    run = stored(tmp_path, run_id)
    assert run["status"] == "interrupted" and run["metrics"]["x"]["count"] == 100


def test_an_explicit_status_is_kept_when_sigterm_arrives_after_finish(tmp_path: Path) -> None:
    process, run_id = start(tmp_path, after="run.finish('completed')\nprint('done', flush=True)\nsignal.pause()")
    assert process.stdout is not None and process.stdout.readline().strip() == "done"
    process.send_signal(signal.SIGTERM)
    returncode, _, err = ended(process)
    assert returncode == -signal.SIGTERM, err
    assert stored(tmp_path, run_id)["status"] == "completed"


SIGTERM_HANDLER = "print(repr(signal.getsignal(signal.SIGTERM)))"


@pytest.mark.parametrize(
    "code, expected",
    [
        ("import signal, aquarium.agent; " + SIGTERM_HANDLER, "Handlers.SIG_DFL"),
        (
            "import signal, aquarium.agent as aq; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "aq.init(mode='offline').finish(); " + SIGTERM_HANDLER,
            "Handlers.SIG_IGN",
        ),
        (
            "import signal, threading, aquarium.agent as aq; "
            "t = threading.Thread(target=lambda: aq.init(mode='offline').finish()); t.start(); t.join(); "
            + SIGTERM_HANDLER,
            "Handlers.SIG_DFL",
        ),
        (
            "import signal, threading, aquarium.agent as aq; "
            "t = threading.Thread(target=lambda: aq.init(mode='offline').finish()); t.start(); t.join(); "
            "aq.init(mode='offline').finish(); " + SIGTERM_HANDLER,
            "ProcessEnd.on_sigterm",
        ),
    ],
    ids=["import-installs-nothing", "ignored-stays-ignored", "not-from-a-thread", "then-from-the-main-thread"],
)
def test_when_the_sigterm_handler_is_installed(tmp_path: Path, code: str, expected: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True, cwd=tmp_path
    )
    assert expected in result.stdout.strip().splitlines()[-1]


def test_the_terminal_statuses_are_one_constant_the_cli_colours() -> None:
    from aquarium.cli.runs import STATUS_STYLES

    assert TERMINAL_STATUSES == ENDED_WELL | ENDED_BADLY | STOPPED
    assert {"terminated", "interrupted", "completed", "failed"} <= TERMINAL_STATUSES
    assert set(STATUS_STYLES) == TERMINAL_STATUSES | {"running"}


def test_finish_called_while_a_finish_is_in_progress_waits_for_it(data_dir: Path) -> None:
    """What a SIGTERM handler does when the signal interrupts finish() (or another thread finishes)."""
    import threading

    import aquarium.agent as aq

    run = aq.init(experiment="signals", mode="offline")
    run.log({"x": 1.0})
    real_close = run._shipper.close
    inner: list[object] = []
    calls: list[float] = []

    def close_interrupted(timeout: float, commit_wait: float) -> object:
        calls.append(timeout)
        if len(calls) == 1:  # the first finish is inside close: a second one comes in now
            other = threading.Thread(target=lambda: inner.append(run.finish("terminated")))
            other.start()
            other.join()
        return real_close(timeout, commit_wait)

    run._shipper.close = close_interrupted  # type: ignore[method-assign]
    report = run.finish()
    assert len(calls) == 2 and len(inner) == 1
    assert getattr(inner[0], "points", None) == 1 and report.points == 1
    with Store(data_dir) as store:
        store.ingest_spool()
        assert store.get_run(run.id)["status"] == "completed"  # the first finish said so
