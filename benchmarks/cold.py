"""Cold starts: a new pipeline object, a new process, the build, the import and the first run.

A short-lived job (a CLI call, a batch worker, a notebook restart) pays these before its first
result, however fast the warm per-node path is. Each figure is measured next to its baseline in
the same run: pipefunc with its disk cache, a bare interpreter, a plain list of functions.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from time import perf_counter
from typing import Any

from benchmarks import peers
from benchmarks.core import Row, nodes_of
from benchmarks.shapes import CHAIN, chain
from benchmarks.timing import best
from nestflow import DiskCache, Pipeline

ROOT = str(Path(__file__).resolve().parents[1])
RUNS = 5
"""New processes and new objects per figure; each figure is the median."""

HEAVY = ("multiprocessing", "cloudpickle", "dask", "rich")
"""Modules a sequential run does not need; loading them is start-up time for nothing."""

NESTFLOW_HIT = """
import sys
sys.path.insert(0, sys.argv[2])
from benchmarks.shapes import chain
from nestflow import DiskCache, Pipeline, node
funcs, outs = chain()
nodes = [node(f, output_name=o) for f, o in zip(funcs, outs)]
pipeline = Pipeline(nodes, name="chain", cache=DiskCache(sys.argv[1]))
assert pipeline.run(v0=0).report.cache_hits == len(funcs)
"""

PIPEFUNC_HIT = """
import sys
sys.path.insert(0, sys.argv[2])
from benchmarks.shapes import chain
import pipefunc
funcs, outs = chain()
pfs = [pipefunc.pipefunc(output_name=o, cache=True)(f) for f, o in zip(funcs, outs)]
pipeline = pipefunc.Pipeline(pfs, cache_type="disk", cache_kwargs={"cache_dir": sys.argv[1]})
assert pipeline.run(outs[-1], kwargs={"v0": 0}) == len(funcs)
"""

# The import is timed first: a module imported before it (json) would not count in its time.
FIRST_RUN = """
import sys, time
started = time.perf_counter()
import nestflow
imported = time.perf_counter()
def inc(x):
    return x + 1
def double(y):
    return y * 2
nodes = [nestflow.node(inc, output_name="y"), nestflow.node(double, output_name="z")]
pipeline = nestflow.Pipeline(nodes, name="two")
ready = time.perf_counter()
assert pipeline.run(x=1, output_name="z") == 4
ran = time.perf_counter()
import json
heavy = [m for m in sys.argv[1].split(",") if m in sys.modules]
print(json.dumps([imported - started, ran - ready, heavy]))
"""

PIPEFUNC_FIRST_RUN = """
import sys, time
started = time.perf_counter()
import pipefunc
imported = time.perf_counter()
def inc(x):
    return x + 1
def double(y):
    return y * 2
pfs = [pipefunc.pipefunc(output_name="y")(inc), pipefunc.pipefunc(output_name="z")(double)]
pipeline = pipefunc.Pipeline(pfs)
ready = time.perf_counter()
assert pipeline.run("z", kwargs={"x": 1}) == 4
ran = time.perf_counter()
import json
print(json.dumps([imported - started, ran - ready, []]))
"""


Env = dict[str, str]


def child_env(pycache: Path) -> Env:
    """The environment of the measured processes: bytecode cached, in a folder of our own.

    An installed package starts from its ``.pyc`` files, but with PYTHONDONTWRITEBYTECODE set
    (as in many containers) an editable install compiles every module in every new process,
    which would dwarf what these rows measure. The prefix keeps ``__pycache__`` out of the tree.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return env | {"PYTHONPYCACHEPREFIX": str(pycache)}


def _python(env: Env, script: str, *args: str) -> str:
    command = [sys.executable, "-c", script, *args]
    return subprocess.run(command, capture_output=True, text=True, check=True, env=env).stdout


def wall_ms(env: Env, script: str, *args: str) -> float:
    """The median wall time of a new process running ``script``, after one discarded run."""
    _python(env, script, *args)  # writes the bytecode caches and warms the page cache
    times = []
    for _ in range(RUNS):
        started = perf_counter()
        _python(env, script, *args)
        times.append(perf_counter() - started)
    return statistics.median(times) * 1e3


def median_first_run(make: Callable[[], Callable[[], Any]]) -> float:
    """The median time of the first call of a new object; ``make`` builds it untimed."""
    make()()  # the first of all also pays lazy imports: that is a new process, not a new object
    times = []
    for _ in range(RUNS):
        run = make()
        gc.collect()
        started = perf_counter()
        run()
        times.append(perf_counter() - started)
    return statistics.median(times)


def new_object_rows(folder: Path, pf_folder: Path) -> list[Row]:
    """Chain of 100, fully cached on disk, run by a Pipeline object built for the occasion:
    of the same nodes, then of new nodes too (a cell that wraps its functions again), where
    nothing of an earlier pipeline object's plans can be shared."""
    funcs, outs = chain()
    nodes = nodes_of(funcs, outs)
    last = outs[-1]
    Pipeline(nodes, name="chain", cache=DiskCache(folder)).run(v0=0)  # fills the cache
    again = Pipeline(nodes, name="chain", cache=DiskCache(folder)).run(v0=0)
    assert again.report.cache_hits == CHAIN, again.report

    def make(new_nodes: bool) -> Callable[[], Callable[[], Any]]:
        def made() -> Callable[[], Any]:
            members = nodes_of(funcs, outs) if new_nodes else nodes
            pipeline = Pipeline(members, name="chain", cache=DiskCache(folder))
            return lambda: pipeline.run(v0=0, output_name=last)

        return made

    name = "chain of 100, DiskCache hit, new Pipeline object (built untimed): per node"
    same = Row(name, "µs", 0.0, 0.0, "<= 0.5x pipefunc")
    fresh = Row("  the same with new nodes too (no plan to share): per node", "µs", 0.0, 0.0, "-")
    same.nestflow = median_first_run(make(False)) / CHAIN * 1e6
    fresh.nestflow = median_first_run(make(True)) / CHAIN * 1e6
    if peers.installed("pipefunc"):  # it makes new PipeFuncs each time: one figure for both
        theirs = median_first_run(_pipefunc_hit(funcs, outs, pf_folder)) / CHAIN * 1e6
        same.peers["pipefunc"] = fresh.peers["pipefunc"] = theirs
    return [same, fresh]


def _pipefunc_hit(funcs: list[Any], outs: list[str], folder: Path) -> Callable[[], Any]:
    import pipefunc

    def make() -> Callable[[], Any]:
        # New PipeFuncs each time, as a new script makes them (pipefunc copies reused ones).
        pairs = zip(funcs, outs, strict=True)
        pfs: list[Any] = [pipefunc.pipefunc(output_name=o, cache=True)(f) for f, o in pairs]
        kwargs = {"cache_dir": str(folder)}
        pipeline = pipefunc.Pipeline(pfs, cache_type="disk", cache_kwargs=kwargs)
        return lambda: pipeline.run(outs[-1], kwargs={"v0": 0})

    assert make()() == CHAIN  # fills the cache
    return make


def new_process_row(env: Env, folder: Path, pf_folder: Path) -> Row:
    """The whole new process: start, imports, build, a fully cached run; wall ms."""
    bare = wall_ms(env, "pass")
    name = f"chain of 100, DiskCache hit, whole new process (plain: python -c pass, {bare:.0f} ms)"
    row = Row(name, "ms", wall_ms(env, NESTFLOW_HIT, str(folder), ROOT), bare, "-")
    if peers.installed("pipefunc"):
        row.peers["pipefunc"] = wall_ms(env, PIPEFUNC_HIT, str(pf_folder), ROOT)
    return row


CHAIN_CODE = compile(
    "\n".join(f"def s{i}(v{i}):\n    return v{i} + 1" for i in range(CHAIN)), "<cold>", "exec"
)
"""The chain's functions compiled once, so defining them costs what a cached module's does."""


def define_chain() -> tuple[list[Callable[..., Any]], list[str]]:
    """Define the 100 chain functions and collect them into a list: the plain baseline."""
    namespace: dict[str, Any] = {}
    exec(CHAIN_CODE, namespace)
    return [namespace[f"s{i}"] for i in range(CHAIN)], [f"v{i + 1}" for i in range(CHAIN)]


def build_row() -> Row:
    """Define 100 functions, wrap each in ``node()``, build the Pipeline: ms."""

    def build() -> Pipeline:
        return Pipeline(nodes_of(*define_chain()), name="chain")

    assert build().run(v0=0, output_name=f"v{CHAIN}") == CHAIN
    name = "chain of 100: define + node() each + Pipeline (plain: define into a list)"
    row = Row(name, "ms", best(build, 50) * 1e3, best(define_chain, 50) * 1e3, "<= 10x plain")
    if peers.installed("pipefunc"):
        import pipefunc

        def pf_build() -> Any:
            funcs, outs = define_chain()
            pairs = zip(funcs, outs, strict=True)
            pfs: list[Any] = [pipefunc.pipefunc(output_name=o)(f) for f, o in pairs]
            return pipefunc.Pipeline(pfs)

        row.peers["pipefunc"] = best(pf_build, 1, repeat=3) * 1e3
    return row


def first_runs(env: Env, script: str) -> list[Any]:
    """What ``script`` reports from ``RUNS`` new processes, after one discarded run."""
    _python(env, script, ",".join(HEAVY))  # writes the bytecode caches
    return [json.loads(_python(env, script, ",".join(HEAVY))) for _ in range(RUNS)]


def first_run_rows(env: Env) -> list[Row]:
    """``import nestflow`` and the first run of a 2-node pipeline, in new processes: ms."""
    ours = first_runs(env, FIRST_RUN)
    imported = Row("import nestflow, new process", "ms", 0.0, 0.0, "-")
    first = Row("first run of a 2-node pipeline after it (built untimed)", "ms", 0.0, 0.0, "< 10")
    imported.nestflow = statistics.median(r[0] for r in ours) * 1e3
    first.nestflow = statistics.median(r[1] for r in ours) * 1e3
    if peers.installed("pipefunc"):
        theirs = first_runs(env, PIPEFUNC_FIRST_RUN)
        imported.peers["pipefunc"] = statistics.median(r[0] for r in theirs) * 1e3
        first.peers["pipefunc"] = statistics.median(r[1] for r in theirs) * 1e3
    heavy = sorted({m for r in ours for m in r[2]})
    listed = ", ".join(heavy) or "none"
    name = f"  loaded by then, of {', '.join(HEAVY)}: {listed}"
    return [imported, first, Row(name, "modules", float(len(heavy)), 0.0, "0")]


def rows() -> list[Row]:
    """Every cold-start figure, in one run."""
    with tempfile.TemporaryDirectory(prefix="nestflow-bench-") as tmp:
        folder, pf_folder = Path(tmp, "nestflow"), Path(tmp, "pipefunc")
        env = child_env(Path(tmp, "pycache"))
        found = [*new_object_rows(folder, pf_folder), new_process_row(env, folder, pf_folder)]
        return [*found, build_row(), *first_run_rows(env)]


if __name__ == "__main__":
    for row in rows():
        print(row)
