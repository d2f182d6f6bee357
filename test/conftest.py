"""Test-wide rules: DDS stays on localhost, every test gets its own ROS_DOMAIN_ID (so parallel
tests and the processes they start never see each other), rendering is headless."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent

# Domain ids 1..100 are free for us on Linux. GEN0_DOMAIN_IDS=START-END narrows the range, so
# two test runs on one machine (e.g. two developers' checkouts) can be kept apart.
_first, _last = (int(x) for x in os.environ.get("GEN0_DOMAIN_IDS", "1-100").split("-"))
_worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
_index = int(_worker[2:]) if _worker.startswith("gw") else 0
_span = max(1, (_last - _first + 1) // _workers)
_test_ids = itertools.count()
_domain_ids = itertools.cycle(range(_first + _index * _span, _first + (_index + 1) * _span))


def processes_of_test(test_id: str) -> dict[int, str]:
    """pid -> command line of every live process (but this one) started under ``GEN0_TEST_ID=test_id``:
    the variable is inherited by children and grandchildren (a launcher's nodes), whatever their group."""
    marker = f"GEN0_TEST_ID={test_id}".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue  # exited, only not yet reaped by its parent
            found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError):
            continue  # gone meanwhile, or not ours
    return found


@pytest.fixture(autouse=True)
def no_process_left_behind(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[str]:
    """Fails a test that leaves a process of its own running (and kills what it left). Defined first,
    so it is torn down last: after the fixtures that stop their processes."""
    test_id = f"{os.getpid()}-{next(_test_ids)}"
    monkeypatch.setenv("GEN0_TEST_ID", test_id)
    yield test_id
    deadline = time.monotonic() + 5.0  # a process signalled just now may still be on its way out
    left = processes_of_test(test_id)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = processes_of_test(test_id)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if left:
        pytest.fail(f"{request.node.name} left processes running (now killed): {left}", pytrace=False)


@pytest.fixture(autouse=True)
def ros_domain_id(monkeypatch: pytest.MonkeyPatch) -> int:
    """A ROS_DOMAIN_ID no other concurrently running test uses; inherited by child processes."""
    domain = next(_domain_ids)
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain))
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    return domain


def _default_sigint() -> None:
    """In a child, before exec: SIGINT as a terminal gives it. A test run started as a background job
    of a non-interactive shell ignores SIGINT, and ignored signals are inherited, so a node would
    never see the Ctrl-C a test sends it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Processes:
    """Starts real child processes (nodes, CLIs) and makes sure none outlives its test."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[tuple[subprocess.Popen, Path]] = []

    def start(self, *args: str, name: str = "proc", env: dict[str, str] | None = None) -> subprocess.Popen:
        log = self.log_dir / f"{name}-{len(self.procs)}.log"
        proc = subprocess.Popen(
            [*args],
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=REPO,
            start_new_session=True,
            preexec_fn=_default_sigint,
        )
        self.procs.append((proc, log))
        return proc

    def python(self, *args: str, name: str = "python", env: dict[str, str] | None = None) -> subprocess.Popen:
        return self.start(sys.executable, *args, name=name, env=env)

    def output(self, proc: subprocess.Popen) -> str:
        for p, log in self.procs:
            if p is proc:
                return log.read_text(errors="replace")
        raise KeyError(proc)

    def stacks(self, proc: subprocess.Popen) -> str:
        """Every thread's stack of a running node of ours (SIGUSR1, see ros/spin.py): what it waits for."""
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGUSR1)
            time.sleep(1.0)
        return self.output(proc)[-12000:]

    def stop_all(self) -> None:
        for proc, _ in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
        deadline = time.monotonic() + 10
        for proc, _ in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def print_logs(self, lines: int = 40) -> None:
        """Each child's exit code and last log lines; pytest shows them only for a failed test."""
        for proc, log in self.procs:
            tail = log.read_text(errors="replace").splitlines()[-lines:] if log.exists() else []
            print(f"----- {log.name} (exit code {proc.returncode})", *tail, sep="\n")


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    try:
        yield procs
    finally:
        procs.stop_all()
        procs.print_logs()


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.05, what: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
