"""The ``python`` tool: run model-written code in a separate, locked-down process.

Each call gets a fresh temporary working directory (removed afterwards) and a new
interpreter, ``sys.executable -I -u`` (isolated mode: no ``PYTHON*`` variables, no
user site, no script dir on ``sys.path``), started in its own session with an
environment of only ``PATH``, ``HOME``/``TMPDIR`` (the working directory), ``LANG`` and
single-thread settings for BLAS/OpenMP, so no API key of the parent is visible.

Layers, each best effort, reported per run in :attr:`SandboxResult.layers` (the
launcher, :mod:`reagent.tools._sandbox_child`, explains how each is set up):

- wall time: the parent kills the whole process group at ``timeout_s`` (and a CPU
  rlimit of ``timeout_s + 1`` s backs it up);
- isolation: ``bubblewrap`` where it is installed and works (``isolation='auto'``), else
  the in-house namespace layers; both give each call new network/PID/IPC/mount
  namespaces and a private root: system and interpreter dirs read-only, a fresh
  ``/proc``, a minimal ``/dev``, private size-capped tmpfs ``/tmp`` (with the working
  directory) and ``/dev/shm``; nothing of the project, the host's data or sockets;
- identity: as root each call runs as its own uid (``uid_base`` + launcher pid), so
  calls cannot read each other even where no private root could be built;
- memory and processes across every process of a call: a per-call cgroup
  (:mod:`reagent.tools.sandbox_host`) where the cgroup file system is writable; always
  rlimits per process (``RLIMIT_AS``, ``RLIMIT_FSIZE``, ``RLIMIT_NOFILE``, and
  ``RLIMIT_NPROC`` for a per-call or dedicated user);
- an in-process socket guard refusing AF_INET/AF_INET6 sockets and name resolution
  (works unprivileged; the network namespace is the real wall).

Run as an ordinary user the code keeps that user's uid (in a user namespace): without a
private root it can read what you can. Run the trainer as root, or in a container,
when untrusted code must not see your files.
Output (stdout and stderr interleaved) is cut to ``max_output_chars``, keeping the
start and the end.

One module (~440 lines) holds the config, the tool and its output handling, the parent's
side of one call; the launcher and the host probes (bubblewrap, cgroups) live apart.
"""

from __future__ import annotations

import json
import os
import pwd
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from reagent.config import cfg
from reagent.tools.sandbox_host import CallCgroup, probe_bwrap

CHILD = Path(__file__).with_name("_sandbox_child.py")
SCRIPT_NAME = "main.py"
ISOLATIONS = ("auto", "bwrap", "inhouse")
MAX_UID_BASE = 2**32 - 2 - 2**22  # pids go up to 2**22 on Linux; 2**32 - 1 is "no uid"


@dataclass
class PythonSandboxConfig:
    timeout_s: float = cfg(
        15.0, help="wall-clock limit per call in seconds; the process group is killed at it"
    )
    memory_mb: int = cfg(
        1024,
        help="memory limit in MiB: RLIMIT_AS of each process and, where a cgroup can be made, "
        "the total of all the call's processes and its tmpfs files",
    )
    max_output_chars: int = cfg(
        2000, help="characters of stdout+stderr returned; the middle is cut, both ends kept"
    )
    max_file_mb: int = cfg(64, help="largest file the code may write (RLIMIT_FSIZE), MiB")
    max_processes: int = cfg(
        128,
        help="RLIMIT_NPROC for the sandbox user (counts all its processes and "
        "threads, across concurrent sandboxes); only set when switching user",
    )
    max_open_files: int = cfg(256, help="RLIMIT_NOFILE of the sandbox process")
    sandbox_user: str = cfg(
        "nobody",
        help="user the code runs as when the parent is root and per_call_uid is off; "
        "empty keeps root (then the code can write anywhere root can)",
    )
    per_call_uid: bool = cfg(
        True,
        help="as root, run each call as its own uid and gid (uid_base + the launcher's pid, "
        "unique among live calls) instead of sandbox_user; ignored when sandbox_user is ''",
    )
    uid_base: int = cfg(
        0x70000000, help="first uid of the per-call uids; pick a range no real user has"
    )
    isolation: str = cfg(
        "auto",
        help="'auto': bubblewrap when installed and able to make namespaces here, else the "
        "in-house layers; 'bwrap': bubblewrap or an error; 'inhouse': the in-house layers",
    )
    max_disk_mb: int = cfg(
        256, help="size of the private tmpfs /tmp (holding the working dir) and of /dev/shm, MiB each"
    )
    cgroups: bool = cfg(
        True,
        help="limit memory (memory_mb, tmpfs included, no swap) and processes (max_processes) "
        "across all processes of a call with a per-call cgroup, where it can be made",
    )
    namespaces: bool = cfg(
        True,
        help="use Linux network/mount/PID namespaces (bubblewrap or in-house) when the kernel "
        "allows it; off leaves only the uid, cgroup, rlimits and socket guard",
    )
    socket_guard: bool = cfg(
        True, help="refuse AF_INET/AF_INET6 sockets inside the interpreter (second layer)"
    )
    python: str = cfg(
        "", help="interpreter to run the code with; empty = the current one (sys.executable)"
    )
    work_root: str = cfg(
        "", help="where temporary working directories are made; empty = system temp dir"
    )

    def __post_init__(self) -> None:
        if self.isolation not in ISOLATIONS:
            raise ValueError(
                f"PythonSandboxConfig.isolation='{self.isolation}' is not one of "
                f"{', '.join(ISOLATIONS)}"
            )
        for name in (
            "timeout_s",
            "memory_mb",
            "max_output_chars",
            "max_file_mb",
            "max_disk_mb",
            "max_processes",
            "max_open_files",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(
                    f"PythonSandboxConfig.{name} must be > 0, got {getattr(self, name)!r}"
                )
        if not 1000 <= self.uid_base <= MAX_UID_BASE:
            raise ValueError(
                f"PythonSandboxConfig.uid_base={self.uid_base} must be in [1000, {MAX_UID_BASE}] "
                "so that uid_base + any pid is a valid, unprivileged uid"
            )
        if self.memory_mb < 64:
            raise ValueError(
                f"PythonSandboxConfig.memory_mb={self.memory_mb} is too small for an "
                "interpreter to start; use at least 64"
            )


@dataclass
class SandboxResult:
    """What one run did; :meth:`text` is what the agent sees."""

    output: str  # stdout+stderr, already cut to max_output_chars
    exit_code: int | None  # None when killed for the time limit
    timed_out: bool
    elapsed_s: float
    layers: list[str] = field(default_factory=list)  # isolation layers that took effect
    timeout_s: float = 0.0

    def text(self) -> str:
        out = self.output.rstrip("\n")
        if self.timed_out:
            status = f"[killed: time limit {self.timeout_s:g} s exceeded]"
        elif self.exit_code is not None and self.exit_code < 0:
            status = f"[killed by signal {_signal_name(-self.exit_code)}]"
        elif self.exit_code:
            status = f"[exit code {self.exit_code}]"
        else:
            return out if out else "[no output]"
        return f"{out}\n{status}" if out else status


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return str(num)


class _Output:
    """Keeps the first and last ``keep`` bytes of a stream of any length, and its total size."""

    def __init__(self, keep: int):
        self.keep = keep
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        room = self.keep - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            del self.tail[: max(0, len(self.tail) - self.keep)]

    def text(self, max_chars: int) -> str:
        dropped = self.total - len(self.head) - len(self.tail)  # bytes never kept (~characters)
        head = self.head.decode("utf-8", "replace")
        tail = self.tail.decode("utf-8", "replace")
        n_head = max_chars // 2
        n_tail = max_chars - n_head
        if dropped == 0:
            whole = head + tail
            if len(whole) <= max_chars:
                return whole
            head = tail = whole
            cut = len(whole) - max_chars
        else:
            cut = len(head) - n_head + dropped + len(tail) - n_tail
        tail_part = tail[len(tail) - n_tail :] if n_tail else ""
        return f"{head[:n_head]}\n[... {cut:,} characters cut ...]\n{tail_part}"


def cut_middle(text: str, max_chars: int) -> str:
    """``text`` cut to ``max_chars``, keeping both ends, with a marker saying how much went."""
    out = _Output(keep=len(text.encode()))
    out.add(text.encode())
    return out.text(max_chars)


def _minimal_env(workdir: str) -> dict[str, str]:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": workdir,
        "TMPDIR": workdir,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "MPLBACKEND": "Agg",
    }
    for name in (
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "NUMEXPR_NUM_THREADS",
    ):
        env[name] = "1"  # each thread counts against RLIMIT_NPROC and RLIMIT_AS
    return env


def _remove_tree(path: str) -> None:
    def retry(func, p, _exc):  # the code may have chmod-ed its files read-only
        try:
            os.chmod(os.path.dirname(p), stat.S_IRWXU)
            func(p)
        except OSError:
            pass

    shutil.rmtree(path, onerror=retry)


class PythonTool:
    """Runs Python code in a sandboxed subprocess; see the module docstring for the layers."""

    name = "python"
    description = (
        "Run Python 3 code in a fresh sandboxed interpreter and get back what it prints "
        "(stdout and stderr). Each call starts from scratch: no variables or files carry over "
        "between calls, so print everything you need. There is no network access and no "
        "package installation; the standard library and the installed scientific packages "
        "are available. Limits: {timeout:g} s wall time, {memory} MiB memory, "
        "{chars} characters of output (the middle of longer output is cut)."
    )
    parameters: ClassVar[dict] = {
        "type": "object",
        "properties": {"code": {"type": "string", "description": "Python source code to run."}},
        "required": ["code"],
    }

    def __init__(self, config: PythonSandboxConfig | None = None):
        self.config = config or PythonSandboxConfig()
        c = self.config
        self.description = self.description.format(
            timeout=c.timeout_s, memory=c.memory_mb, chars=c.max_output_chars
        )
        self._user: tuple[str, int, int] | None = None
        self._bwrap = probe_bwrap() if c.isolation != "inhouse" else None
        if c.isolation == "bwrap" and not self._bwrap.works:
            raise ValueError(
                f"PythonSandboxConfig.isolation='bwrap' but {self._bwrap.why_not}; "
                "install bubblewrap or use isolation='auto'"
            )
        if os.geteuid() == 0 and c.sandbox_user:
            try:
                entry = pwd.getpwnam(c.sandbox_user)
                self._user = (c.sandbox_user, entry.pw_uid, entry.pw_gid)
            except KeyError:
                raise ValueError(
                    f"PythonSandboxConfig.sandbox_user='{c.sandbox_user}' does not exist; "
                    "name an existing unprivileged user or set it to '' to keep root"
                ) from None
            if c.per_call_uid:
                self._user = ("per-call", -1, -1)  # the launcher picks the ids

    def __call__(self, code: str = "", **_: Any) -> str:
        if not isinstance(code, str) or not code.strip():
            return "Error: python needs a non-empty 'code' string"
        try:
            return self.run(code).text()
        except Exception as e:  # noqa: BLE001 - the agent gets text, never an exception
            return f"Error: could not run the code: {type(e).__name__}: {e}"

    def run(self, code: str) -> SandboxResult:
        """Run ``code`` once in a new sandbox and wait for it (at most ``timeout_s``)."""
        c = self.config
        workdir = tempfile.mkdtemp(prefix="reagent-py-", dir=c.work_root or None)
        try:
            script = os.path.join(workdir, SCRIPT_NAME)
            Path(script).write_text(code, encoding="utf-8")
            cgroup = None
            if c.cgroups and os.geteuid() == 0:
                cgroup = CallCgroup.create(
                    os.path.basename(workdir), c.memory_mb << 20, c.max_processes
                )
            try:
                return self._run_in(workdir, script, cgroup)
            finally:
                if cgroup:
                    cgroup.remove()
        finally:
            _remove_tree(workdir)

    def _run_in(self, workdir: str, script: str, cgroup: CallCgroup | None) -> SandboxResult:
        c = self.config
        bwrap = self._bwrap if self._bwrap and self._bwrap.works and c.namespaces else None
        status_r, status_w = os.pipe()
        params = {
            "workdir": workdir,
            "script": script,
            "status_fd": status_w,
            "memory_bytes": c.memory_mb << 20,
            "file_bytes": c.max_file_mb << 20,
            "cpu_seconds": int(c.timeout_s) + 1,
            "processes": c.max_processes,
            "open_files": c.max_open_files,
            "namespaces": c.namespaces,
            "socket_guard": c.socket_guard,
            "user": self._user[0] if self._user else None,
            "uid": self._user[1] if self._user else None,
            "gid": self._user[2] if self._user else None,
            "per_call_uid": bool(self._user) and self._user[0] == "per-call",
            "uid_base": c.uid_base,
            "disk_bytes": c.max_disk_mb << 20,
            "cgroup_procs": cgroup.procs if cgroup else [],
            "cgroup": cgroup.description if cgroup else "",
            "bwrap": bwrap.path if bwrap else "",
            "bwrap_version": bwrap.version if bwrap else "",
            "bwrap_why_not": self._bwrap.why_not if self._bwrap and not bwrap else "",
        }
        start = time.monotonic()
        try:
            proc = subprocess.Popen(
                [c.python or sys.executable, "-I", "-u", str(CHILD), json.dumps(params)],
                cwd=workdir,
                env=_minimal_env(workdir),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                pass_fds=(status_w,),
                start_new_session=True,
            )
        except BaseException:
            os.close(status_r)
            raise
        finally:
            os.close(status_w)
        output = _Output(keep=4 * c.max_output_chars)  # utf-8: at most 4 bytes a character
        try:
            timed_out = self._collect(proc, output, start + c.timeout_s)
        finally:
            _kill_group(proc)
            proc.wait()
            proc.stdout.close()
            layers, killed_by = _read_status(status_r)
        exit_code = -killed_by if killed_by else proc.returncode
        return SandboxResult(
            output=output.text(c.max_output_chars),
            exit_code=None if timed_out else exit_code,
            timed_out=timed_out,
            elapsed_s=time.monotonic() - start,
            layers=layers,
            timeout_s=c.timeout_s,
        )

    @staticmethod
    def _collect(proc: subprocess.Popen, output: _Output, deadline: float) -> bool:
        """Read output until the launcher exits or the deadline passes; True at the deadline.

        The launcher is waited for without reaping it, so its process group id stays
        taken until the caller has killed the group (no pid reuse race). Processes the
        code left running in the background may hold the pipe open: they do not keep
        the call waiting once the launcher is gone.
        """
        fd = proc.stdout.fileno()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            exited = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
            ready, _, _ = select.select([fd], [], [], 0 if exited else min(remaining, 0.05))
            if ready:
                data = os.read(fd, 65536)
                if data:
                    output.add(data)
                    continue
                if not exited:  # EOF but still running (closed its stdout): just wait
                    time.sleep(min(0.01, max(0.0, remaining)))
                    continue
            if exited:
                return False


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _read_status(fd: int) -> tuple[list[str], int | None]:
    """The launcher's report: the layers that took effect, and the signal that killed the code."""
    layers: list[str] = []
    killed_by = None
    with os.fdopen(fd, "r") as f:
        for line in f.read().splitlines():
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, list):
                layers = [str(x) for x in item]
            elif isinstance(item, dict) and isinstance(item.get("signal"), int):
                killed_by = item["signal"]
    return layers, killed_by
