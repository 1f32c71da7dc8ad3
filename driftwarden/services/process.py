"""Process handling shared by the three services: start a real binary with
`subprocess.Popen` (no shell), send its output to a log file, poll readiness against a
deadline, stop it by PID.

Config rendering lives in the service modules as pure functions; this module never
looks at what a service does, only at its process.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from driftwarden.errors import ServiceError

INSTALL_HINT = "run `make services-install` (scripts/install-services.sh) first"

_PR_SET_PDEATHSIG = 1


def require_binary(name: str) -> str:
    """Absolute path of `name` on PATH, or ServiceError saying how to install it."""
    path = shutil.which(name)
    if path is None:
        raise ServiceError(f"{name!r} not found on PATH; {INSTALL_HINT}")
    return path


def log_tail(path: Path | str, lines: int = 40) -> str:
    """The last `lines` lines of a log file ('' when it does not exist)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask Linux to SIGKILL the child when the process that started it dies, so a test
    run that is itself killed (SIGKILL, OOM) leaves no server behind."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class ManagedProcess:
    """One server process: started from an argv, output appended to `log_path`.

    `detach=True` starts it so that it outlives this Python process (`services up`);
    otherwise the kernel kills it when this process dies, and an atexit hook stops any
    that are still running when the interpreter exits.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        detach: bool = False,
    ) -> None:
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = Path(log_path)
        self.cwd = cwd
        self.env = dict(env) if env is not None else None
        self.detach = detach
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        if self.running():
            raise ServiceError(f"{self.name} is already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"--- {time.strftime('%H:%M:%S')} starting: {' '.join(self.argv)}\n".encode())
            log.flush()
            try:
                self._proc = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.cwd,
                    env=self.env,
                    close_fds=True,
                    start_new_session=True,
                    preexec_fn=None if self.detach else _die_with_parent,
                )
            except OSError as e:
                raise ServiceError(f"{self.name}: cannot execute {self.argv[0]}: {e}") from e
        if not self.detach:
            _LIVE.add(self)

    def failure(self, message: str) -> ServiceError:
        """A ServiceError carrying `message` and the tail of this service's log."""
        tail = log_tail(self.log_path)
        return ServiceError(
            f"{self.name}: {message}\n--- last lines of {self.log_path} ---\n{tail}"
        )

    def wait_ready(self, check: Callable[[], bool], timeout: float, what: str) -> float:
        """Poll `check()` until it is true; return the seconds waited.

        Fails at once when the process exits, or at the deadline, with the log tail.
        """
        start = time.monotonic()
        deadline = start + timeout
        delay = 0.05
        while True:
            if self._proc is None:
                raise ServiceError(f"{self.name} was never started")
            code = self._proc.poll()
            if code is not None:
                raise self.failure(f"exited with code {code} before it was ready ({what})")
            if check():
                return time.monotonic() - start
            if time.monotonic() >= deadline:
                raise self.failure(f"not ready after {timeout:.0f}s ({what})")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    def run_to_completion(self, timeout: float) -> None:
        """For one-shot tools (Kafka's storage format): wait for exit, fail on non-zero."""
        self.start()
        assert self._proc is not None
        try:
            code = self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise self.failure(f"did not finish within {timeout:.0f}s") from None
        finally:
            _LIVE.discard(self)
        if code != 0:
            raise self.failure(f"exited with code {code}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, wait up to `timeout` seconds, then SIGKILL. Idempotent."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(timeout=10)
        _LIVE.discard(self)

    def kill(self) -> None:
        """SIGKILL now (a crash, as far as the service can tell) and reap it."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout=10)
        _LIVE.discard(self)


_LIVE: set[ManagedProcess] = set()


@atexit.register
def _stop_all_at_exit() -> None:
    for proc in list(_LIVE):
        with contextlib.suppress(Exception):
            proc.stop(timeout=5)


# --- processes that are not our children (`services down`) ------------------------------


def pid_alive(pid: int) -> bool:
    """True when `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # Field 3, after the parenthesised command name, is the state.
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def pid_cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def stop_pid(pid: int, *, must_contain: str, timeout: float = 10.0) -> bool:
    """Stop a process we started earlier by PID: SIGTERM, then SIGKILL after `timeout`.

    `must_contain` is a string its command line must include (a data directory), so a
    PID that has since been reused by an unrelated process is left alone. Returns True
    when a process was stopped.
    """
    if not pid_alive(pid) or not any(must_contain in arg for arg in pid_cmdline(pid)):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    return True
