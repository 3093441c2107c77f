"""What this machine offers the python sandbox: bubblewrap and per-call cgroups.

The sandbox (:mod:`reagent.tools.python_exec`) prefers a maintained isolation tool,
`bubblewrap <https://github.com/containers/bubblewrap>`_ (``bwrap``, Debian package
``bubblewrap``), and falls back to its own namespace layers when ``bwrap`` is missing or
cannot create namespaces here. :func:`probe_bwrap` answers that once per tool.

Memory and process limits that hold across every process a call starts need a cgroup:
:class:`CallCgroup` makes one per call under the cgroup this process is in (cgroup v1
``memory`` + ``pids`` controllers, or cgroup v2 with those controllers delegated), the
launcher moves itself into it before anything else, and :meth:`CallCgroup.remove`
kills whatever is left in it and deletes it. Where the cgroup file system is not
writable (an ordinary user, most containers without delegation) :meth:`CallCgroup.create`
returns ``None`` and the call relies on per-process rlimits and size-capped tmpfs mounts.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("memory", "pids")


@dataclass(frozen=True)
class BwrapProbe:
    path: str | None  # the bwrap executable, or None when it is not installed
    works: bool  # it created user/pid/net/mount namespaces in a trial run
    version: str = ""
    why_not: str = ""  # the reason it cannot be used, for the layers report


def probe_bwrap() -> BwrapProbe:
    """Whether ``bwrap`` is installed and can create the namespaces the sandbox needs here."""
    path = shutil.which("bwrap")
    if path is None:
        return BwrapProbe(None, False, why_not="bubblewrap not installed (apt-get install bubblewrap)")
    try:
        version = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        trial = [path, "--unshare-all", "--die-with-parent", "--new-session"]
        if os.geteuid() != 0:
            trial.append("--unshare-user")
        trial += ["--ro-bind", "/", "/", "--proc", "/proc", "--tmpfs", "/tmp", "--", "true"]
        done = subprocess.run(trial, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as e:
        return BwrapProbe(path, False, why_not=f"bubblewrap failed to run: {e}")
    if done.returncode != 0:
        reason = done.stderr.strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
        return BwrapProbe(path, False, version, f"bubblewrap cannot create namespaces: {reason[0]}")
    return BwrapProbe(path, True, version)


def _own_cgroups() -> dict[str, str]:
    """controller (or '' for the v2 unified hierarchy) -> this process's cgroup path."""
    own: dict[str, str] = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return own
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            own[name] = path
    return own


@dataclass
class CallCgroup:
    """One call's cgroups; ``procs`` are the ``cgroup.procs`` files the launcher writes itself to."""

    dirs: list[Path]
    procs: list[str]
    description: str
    _removed: bool = field(default=False, repr=False)

    @classmethod
    def create(cls, name: str, memory_bytes: int, max_pids: int) -> CallCgroup | None:
        """A cgroup limiting memory (no swap) and process count, or ``None`` where none can be made."""
        own = _own_cgroups()
        if all(c in own for c in CONTROLLERS) and (CGROUP_ROOT / "memory").is_dir():
            return cls._create_v1(name, own, memory_bytes, max_pids)
        if "" in own and (CGROUP_ROOT / "cgroup.controllers").is_file():
            return cls._create_v2(name, own[""], memory_bytes, max_pids)
        return None

    @classmethod
    def _create_v1(
        cls, name: str, own: dict[str, str], memory_bytes: int, max_pids: int
    ) -> CallCgroup | None:
        made = cls([], [], f"cgroup v1 (memory {memory_bytes >> 20} MiB incl. tmpfs, pids {max_pids})")
        settings = {
            "memory": [("memory.limit_in_bytes", memory_bytes), ("memory.memsw.limit_in_bytes", memory_bytes)],
            "pids": [("pids.max", max_pids)],
        }
        try:
            for controller, values in settings.items():
                path = CGROUP_ROOT / controller / own[controller].lstrip("/") / name
                path.mkdir()
                made.dirs.append(path)
                for file, value in values:
                    if (path / file).exists() or file != "memory.memsw.limit_in_bytes":
                        (path / file).write_text(str(value))
                made.procs.append(str(path / "cgroup.procs"))
        except OSError:
            made.remove()
            return None
        return made

    @classmethod
    def _create_v2(cls, name: str, own: str, memory_bytes: int, max_pids: int) -> CallCgroup | None:
        parent = CGROUP_ROOT / own.lstrip("/")
        try:
            enabled = (parent / "cgroup.subtree_control").read_text().split()
            if not all(c in enabled for c in CONTROLLERS):
                return None  # not delegated to us; enabling it would move our own processes
            path = parent / name
            path.mkdir()
        except OSError:
            return None
        made = cls([path], [str(path / "cgroup.procs")], "")
        made.description = f"cgroup v2 (memory {memory_bytes >> 20} MiB incl. tmpfs, pids {max_pids})"
        try:
            (path / "memory.max").write_text(str(memory_bytes))
            if (path / "memory.swap.max").exists():
                (path / "memory.swap.max").write_text("0")
            (path / "pids.max").write_text(str(max_pids))
        except OSError:
            made.remove()
            return None
        return made

    def remove(self) -> None:
        """Kill every process still in the cgroups, then delete them (waits up to ~2 s)."""
        if self._removed:
            return
        self._removed = True
        deadline = time.monotonic() + 2.0
        for path in reversed(self.dirs):
            while True:
                for pid in _pids_in(path):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        break  # left behind, empty soon; the kernel frees it with its last task
                    time.sleep(0.01)


def _pids_in(path: Path) -> list[int]:
    try:
        return [int(p) for p in (path / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []
