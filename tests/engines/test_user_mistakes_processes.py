"""Worker processes that cannot start or that die: one clear error in the coordinator.

A script without an ``if __name__ == "__main__":`` guard makes every spawned worker import
it and start workers of its own; a worker killed by a signal is reported by that signal.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nestflow import BackendError, LocalBackend, Pipeline, node
from nestflow.engines.processes import worker_lost

UNGUARDED = """\
from nestflow import LocalBackend, Pipeline, node


@node(output_name="doubled")
def double(x):
    return 2 * x


pipeline = Pipeline([double], backend=LocalBackend({mode}="parallel", max_workers=2))
print(pipeline.{call})
"""

CALLS = {
    "map_execution": 'map(x=[1, 2, 3], map_over="x")',
    "node_execution": "run(x=1)",
}


@pytest.mark.parametrize("mode", sorted(CALLS))
def test_a_script_without_main_guard_fails_with_one_short_error_naming_the_guard(
    tmp_path: Path, mode: str
) -> None:
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED.format(mode=mode, call=CALLS[mode]))

    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=90
    )

    output = done.stdout + done.stderr
    assert done.returncode == 1
    assert 'if __name__ == "__main__":' in output
    assert "nestflow.errors.BackendError: Worker processes cannot start: `unguarded.py`" in output
    assert output.count("Traceback") == 1
    assert "ConnectionResetError" not in output
    assert "bootstrapping phase" not in output
    assert len(output.splitlines()) < 60


def test_a_guarded_script_runs_its_workers(tmp_path: Path) -> None:
    script = tmp_path / "guarded.py"
    body = UNGUARDED.format(mode="map_execution", call=CALLS["map_execution"])
    head, _, last = body.rpartition("pipeline = ")
    script.write_text(
        head + 'if __name__ == "__main__":\n' + textwrap.indent("pipeline = " + last, "    ")
    )

    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=90
    )

    assert done.returncode == 0, done.stderr
    assert "{'doubled': [2, 4, 6]}" in done.stdout


def test_a_worker_killed_by_a_signal_is_reported_by_the_signal_name() -> None:
    @node(output_name="never")
    def die(x: int) -> int:
        os.kill(os.getpid(), signal.SIGKILL)
        return x

    backend = LocalBackend(node_execution="parallel", max_workers=1)

    with pytest.raises(BackendError) as caught:
        Pipeline([die], backend=backend).run(x=1)

    message = str(caught.value)
    assert "killed by SIGKILL" in message
    assert "exit code None" not in message
    assert "out-of-memory" in message
    assert "nestflow: node pipeline > die (depth 0)" in caught.value.__notes__


def test_the_pool_replaces_a_killed_worker_for_later_calls() -> None:
    @node(output_name="never")
    def die(x: int) -> int:
        os.kill(os.getpid(), signal.SIGTERM)
        return x

    @node(output_name="doubled")
    def double(x: int) -> int:
        return 2 * x

    backend = LocalBackend(node_execution="parallel", max_workers=1)
    with pytest.raises(BackendError, match="killed by SIGTERM"):
        Pipeline([die], backend=backend).run(x=1)

    assert Pipeline([double], backend=backend).run(x=4) == {"doubled": 8}


@pytest.mark.parametrize(
    ("code", "expected"),
    [(1, "exited with code 1"), (-9, "killed by SIGKILL"), (-200, "killed by signal 200")],
)
def test_a_lost_worker_is_described_by_how_it_ended(code: int, expected: str) -> None:
    assert expected in str(worker_lost(code))
