"""Running the servers the tests start: each in a process group of its own, from a temporary
directory of its own, sometimes seeing private copies of system files."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

# How long a server may take to exit after SIGTERM before its group is killed.
STOP_GRACE = 2.0


def wait_or_kill_group(process: subprocess.Popen[bytes], grace: float = STOP_GRACE) -> None:
    """Wait `grace` seconds for `process` to exit, then kill its whole process group: a master
    still waiting on a child that is starting up would otherwise hold the test run."""
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        # Not yet reaped, so its id still names only its own group.
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def with_private_files(files: dict[str, Path], command: list[str]) -> list[str]:
    """`command` run in a mount namespace of its own, where each system path in `files` shows
    the given file instead: the rest of the machine never sees them."""
    binds = " && ".join(
        f"mount --bind {shlex.quote(str(source))} {shlex.quote(path)}"
        for path, source in files.items()
    )
    return ["unshare", "--mount", "sh", "-c", f'{binds} && exec "$@"', "sh", *command]


def sbin(name: str) -> str | None:
    """The path of a system program, or None; sbin is often missing from PATH outside a root
    login shell."""
    return shutil.which(name, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")


def with_lines(system_file: str, *lines: str) -> str:
    """A system file such as /etc/passwd with `lines` added: what a private copy shows."""
    return Path(system_file).read_text().rstrip("\n") + "\n" + "".join(f"{x}\n" for x in lines)


def answers(host: str, port: int, greeting: bytes = b"", timeout: float = 1.0) -> bool:
    """Whether `port` accepts a connection and, when a `greeting` is given, sends one that
    starts with it."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            return not greeting or sock.recv(512).startswith(greeting)
    except OSError:
        return False


class ServerError(RuntimeError):
    """A server could not be started; the message says why and quotes its log."""


class StoppableServer:
    """How every server the tests start is stopped: SIGTERM to its process, then, if it
    lingers, SIGKILL to its whole group, and its temporary directory removed."""

    directory: Path | None
    _process: subprocess.Popen[bytes] | None

    def stop(self) -> None:
        """Terminate the server (killing its process group if it lingers); remove its files."""
        self.send_stop()
        self.wait_stopped()

    def send_stop(self) -> None:
        """Ask the server to exit, without waiting; `wait_stopped()` finishes the job (so that
        several servers can be stopped at once)."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()

    def wait_stopped(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            wait_or_kill_group(process)
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None


class PrivateServer(StoppableServer):
    """A server process run from a temporary directory of its own, as root, in a session of its
    own. Subclasses say what to run (`_spawn`) and where it answers (`_ready_when`).

    `start()` returns once every port of `_ready_when` answers; `stop()` terminates the process
    group (SIGKILL if it lingers) and removes the directory. Both touch loopback and files.
    """

    kind = ""

    def __init__(self, startup_timeout: float = 10.0) -> None:
        self.startup_timeout = startup_timeout
        self.directory: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return self.kind

    @property
    def pid(self) -> int:
        """The server's process id, which is also its process group's (it runs in its own)."""
        if self._process is None:
            raise ServerError(f"{self!r} is not running")
        return self._process.pid

    def start(self) -> Self:
        """Write the files, run the server and wait until it answers; ServerError if not."""
        self._check_installed()
        if os.geteuid() != 0:
            raise ServerError(f"{self!r} must run as root: it switches to users of its own")
        try:
            self.directory = Path(tempfile.mkdtemp(prefix=f"{self.kind}-"))
            self.directory.chmod(0o755)
            command = self._spawn(self.directory)
            with (self.directory / "startup.log").open("wb") as output:
                self._process = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    env=self._environment(),
                    start_new_session=True,
                )
            self._wait_until_ready()
        except BaseException:
            self.stop()  # also on Ctrl-C or a bug here: never leave a server running
            raise
        return self

    def log_tail(self, lines: int = 20) -> str:
        if self.directory is None:
            return ""
        text = []
        for path in sorted(self.directory.glob("*.log")):
            text += path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(text)

    def _check_installed(self) -> None:
        """Raise ServerError, naming what to install, when the server's program is missing."""
        raise NotImplementedError

    def _spawn(self, directory: Path) -> list[str]:
        """Write the server's files into `directory`; return the command that runs it."""
        raise NotImplementedError

    def _ready_when(self) -> list[tuple[str, int, bytes]]:
        """(host, port, how its greeting starts, or b"" for any connection) for each port."""
        raise NotImplementedError

    def _environment(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C"}

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        waiting = self._ready_when()
        while waiting:
            if self._process is not None and self._process.poll() is not None:
                raise self._error(f"exited with status {self._process.returncode}")
            if time.monotonic() > deadline:
                raise self._error(f"did not answer within {self.startup_timeout:g} s")
            if answers(*waiting[0]):
                waiting.pop(0)
            else:
                time.sleep(0.02)

    def _error(self, what: str) -> ServerError:
        return ServerError(f"{self!r} {what}; its log ends with:\n{self.log_tail()}")
