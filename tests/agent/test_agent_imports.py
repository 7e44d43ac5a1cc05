"""The agent is a guest in training jobs: light imports, no side effects until a run starts."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = [
    "numpy",
    "aiohttp",
    "sqlite_utils",
    "rq",
    "panel",
    "bokeh",
    "blosc2",
    "torch",
    "matplotlib",
    "click",
    "rich",
    "aquarium.collector",
]


def run_python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    return result.stdout.strip().splitlines()[-1]


def test_importing_the_agent_loads_no_heavy_modules() -> None:
    code = f"import sys, json, aquarium.agent; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    assert json.loads(run_python(code)) == []


def test_importing_the_agent_starts_no_threads_and_registers_nothing() -> None:
    code = (
        "import atexit, sys, threading; hook = sys.excepthook; import aquarium.agent; "
        "print(threading.active_count(), sys.excepthook is hook, atexit._ncallbacks())"
    )
    threads, same_hook, callbacks = run_python(code).split()
    assert threads == "1" and same_hook == "True"
    baseline = run_python("import atexit, logging, redis, msgpack; print(atexit._ncallbacks())")  # theirs, not ours
    assert callbacks == baseline


def test_a_script_that_never_calls_finish_still_stores_everything(tmp_path) -> None:  # type: ignore[no-untyped-def]
    code = (
        f"import aquarium.agent as aq; run = aq.init(experiment='e', mode='offline', data_dir={str(tmp_path)!r}); "
        "[aq.log({'x': float(i)}) for i in range(1000)]; print(run.id)"
    )
    run_id = run_python(code)
    from aquarium.collector import Store

    with Store(tmp_path) as store:
        store.ingest_spool()
        run = store.get_run(run_id)
        assert run["status"] == "completed" and run["metrics"]["x"]["count"] == 1000


def test_an_uncaught_exception_marks_the_run_failed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    code = (
        f"import aquarium.agent as aq; run = aq.init(experiment='e', mode='offline', data_dir={str(tmp_path)!r}); "
        "print(run.id, flush=True); aq.log({'x': 1.0}); raise SystemError('boom')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "boom" in result.stderr
    run_id = result.stdout.split()[0]
    from aquarium.collector import Store

    with Store(tmp_path) as store:
        store.ingest_spool()
        assert store.get_run(run_id)["status"] == "failed"
