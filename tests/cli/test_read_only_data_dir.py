"""`up` and `collector` on a read-only data dir: one line naming the path, exit 1, no traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

AQUARIUM = [sys.executable, "-P", "-c", "from aquarium.cli import main; main()"]


def run_on_read_only(data_dir: Path, *args: str, argv: list[str] = AQUARIUM) -> subprocess.CompletedProcess[str]:
    """Run `aquarium ARGS` (or ``argv`` + ARGS) with ``data_dir`` read-only for it.

    Root writes through permission bits, so as root the directory is bind-mounted read-only in
    a private mount namespace (nothing outside the child sees it); otherwise chmod is enough.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        data_dir.chmod(0o555)
        return subprocess.run([*argv, *args], capture_output=True, text=True, timeout=60)
    assert shutil.which("unshare"), "running as root, the test needs unshare (util-linux) for a read-only mount"
    command = " ".join(f"'{a}'" for a in [*argv, *args])
    script = f"mount --bind '{data_dir}' '{data_dir}' && mount -o remount,bind,ro '{data_dir}' && exec {command}"
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "command",
    [["up", "--port", "0"], ["collector", "--burst"], ["collector"]],
    ids=["up", "collector --burst", "collector"],
)
def test_a_writer_on_a_read_only_data_dir_names_the_path(tmp_path: Path, redis_url: str, command: list[str]) -> None:
    data_dir = tmp_path / "colleague"
    result = run_on_read_only(data_dir, *command, "--data-dir", str(data_dir), "--redis-url", redis_url)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    error = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(error) == 1 and str(data_dir) in error[0] and "not writable" in error[0], result.stderr


def test_a_read_only_data_dir_is_read_through_api(tmp_path: Path) -> None:
    """A colleague's results on a read-only mount: Api reads them (no -shm file can be made)."""
    from batches import make_batch

    from aquarium.collector import Store

    data_dir = tmp_path / "colleague"
    with Store(data_dir) as store:
        store.ingest([make_batch(0, [0, 1, 2], [1.0, 2.0, 3.0], run="theirs", params={"lr": 0.1})])
    script = (
        "import sys; from aquarium.collector import Api; api = Api(sys.argv[1]); "
        'print(list(api.runs(filter="params.lr > 0.01")["id"]), api.series("theirs", "loss").values.tolist())'
    )
    result = run_on_read_only(data_dir, str(data_dir), argv=[sys.executable, "-P", "-c", script])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['theirs'] [1.0, 2.0, 3.0]"
