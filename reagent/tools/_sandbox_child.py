"""Launcher that runs inside the sandbox process of :mod:`reagent.tools.python_exec`.

It is started as ``python -I -u _sandbox_child.py PARAMS_JSON`` by the parent (in a new
session, with an empty environment and a fresh working directory as cwd), then, in
this order, before a single line of the model's code runs:

1. **namespaces** (Linux, best effort): ``unshare`` a new network namespace (only a
   downed loopback: no route anywhere), a mount namespace and a PID namespace. As
   root these need no more; as an ordinary user a user namespace is added with an
   identity uid/gid map. In the mount namespace ``/tmp``, ``/var/tmp`` and
   ``/dev/shm`` are bound read-only (the working directory stays writable) and, when
   privileges will be dropped, interpreter directories under a home the sandbox user
   cannot enter (e.g. pyenv in ``/root``) are bound read-only over an empty tmpfs, so
   the rest of that home stays hidden. With a PID namespace this process forks: the
   child is PID 1 of the namespace, so when it dies the kernel kills everything the
   code started, even processes that left the process group. Its PID 1 is a small
   reaper; the code runs as PID 2, so signals it sends itself behave as usual.
2. **resource limits**: address space, CPU seconds, file size, open files, no core
   files, and, when switching to an unprivileged user, the number of processes.
3. **privileges**: when started as root, ``setgroups([])``, ``setgid`` and ``setuid`` to
   the sandbox user (``nobody`` by default), so nothing outside the working directory
   that is not world-writable can be written.
4. **socket guard**: ``socket.socket`` and ``_socket.socket`` refuse AF_INET/AF_INET6 and
   name resolution raises. It works without any privilege but is in-process, so code
   that tries hard (ctypes) can get past it; the network namespace is the real wall.

The layers that took effect are written as a JSON line to the status pipe the parent
passed (``status_fd``), followed by ``{"signal": N}`` from the reaper when the code was
killed by a signal; then the code in ``main.py`` runs as ``__main__``. Only the standard
library is imported here, and nothing of this module is visible to the model's code.
"""

import ctypes
import json
import os
import resource
import sys
import traceback
import types

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
WORLD_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm")

_libc = ctypes.CDLL(None, use_errno=True)


def _unshare(flags: int) -> bool:
    return _libc.unshare(flags) == 0


def _mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None
) -> None:
    enc = [s.encode() if s is not None else None for s in (source, target, fstype, data)]
    if _libc.mount(enc[0], enc[1], enc[2], ctypes.c_ulong(flags), enc[3]) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


def _kept_flags(path: str) -> int:
    """nosuid/nodev/noexec of the mount holding ``path``: a bind remount must repeat them."""
    return os.statvfs(path).f_flag & (MS_NOSUID | MS_NODEV | MS_NOEXEC)


class _Mounts:
    """Mounts made so far, so a layer that fails halfway can be taken back whole."""

    def __init__(self) -> None:
        self.targets: list[str] = []

    def mount(
        self,
        source: str | None,
        target: str,
        fstype: str | None,
        flags: int,
        data: str | None = None,
    ) -> None:
        _mount(source, target, fstype, flags, data)
        if not flags & MS_REMOUNT and not flags & MS_PRIVATE:
            self.targets.append(target)

    def bind_readonly(self, source: str, target: str) -> None:
        self.mount(source, target, None, MS_BIND | MS_REC)
        self.mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | _kept_flags(target))

    def undo(self) -> None:
        for target in reversed(self.targets):
            _libc.umount2(target.encode(), 2)  # MNT_DETACH
        self.targets.clear()


def _can_enter(path: str, uid: int, gid: int) -> bool:
    st = os.stat(path)
    bit = 0o100 if st.st_uid == uid else 0o010 if st.st_gid == gid else 0o001
    return bool(st.st_mode & bit)


def _hidden_interpreter_dirs(uid: int, gid: int) -> dict[str, list[str]]:
    """Interpreter dirs the user cannot reach, grouped by the first ancestor it cannot enter."""
    needed = {os.path.realpath(p) for p in [sys.prefix, sys.base_prefix, *sys.path] if p}
    needed = {p for p in needed if os.path.isdir(p)}
    needed = {p for p in needed if not any(p != q and p.startswith(q + "/") for q in needed)}
    by_blocker: dict[str, list[str]] = {}
    for path in sorted(needed):
        parts = path.split("/")
        for i in range(2, len(parts) + 1):
            ancestor = "/".join(parts[:i])
            if not _can_enter(ancestor, uid, gid):
                by_blocker.setdefault(ancestor, []).append(path)
                break
    return by_blocker


def _expose_interpreter(uid: int, gid: int) -> list[str]:
    """Bind interpreter dirs hidden behind an unenterable ancestor over a tmpfs on that ancestor."""
    # A dir that is itself unreadable (blocker == the dir) cannot be helped by a bind mount.
    by_blocker = {b: ps for b, ps in _hidden_interpreter_dirs(uid, gid).items() if b not in ps}
    exposed: list[str] = []
    mounts = _Mounts()
    try:
        for blocker, paths in by_blocker.items():
            fds = {p: os.open(p, os.O_PATH | os.O_DIRECTORY) for p in paths}
            mounts.mount("tmpfs", blocker, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=1m")
            for path, fd in fds.items():
                os.makedirs(path, exist_ok=True)
                mounts.bind_readonly(f"/proc/self/fd/{fd}", path)
                os.close(fd)
                exposed.append(path)
            mounts.mount(None, blocker, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    except OSError:
        mounts.undo()
        raise
    return exposed


def _setup_mounts(workdir: str, drop: bool, uid: int, gid: int, layers: list[str]) -> None:
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    mounts = _Mounts()
    readonly = []
    try:
        for path in WORLD_WRITABLE:
            if os.path.isdir(path) and not os.path.islink(path):
                mounts.bind_readonly(path, path)
                readonly.append(path)
        # The working directory may sit under a now read-only /tmp: give it a writable mount.
        mounts.mount(workdir, workdir, None, MS_BIND)
        mounts.mount(None, workdir, None, MS_BIND | MS_REMOUNT | _kept_flags(workdir))
    except OSError:
        mounts.undo()
        raise
    layers.append("read-only " + ",".join(readonly))
    if drop:
        exposed = _expose_interpreter(uid, gid)
        if exposed:
            layers.append("interpreter bound read-only: " + ",".join(exposed))


def _enter_namespaces(params: dict, layers: list[str]) -> bool:
    """Try the namespace layers; returns whether a PID namespace was entered (fork needed)."""
    if not params["namespaces"] or not sys.platform.startswith("linux"):
        return False
    root = os.geteuid() == 0
    base = CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWPID
    uid, gid = os.getuid(), os.getgid()
    for flags in (base, CLONE_NEWNET | CLONE_NEWPID, CLONE_NEWNET):
        if _unshare(flags if root else flags | CLONE_NEWUSER):
            break
    else:
        return False
    if not root:  # map our own ids so files we create keep a valid owner
        with open("/proc/self/setgroups", "w") as f:
            f.write("deny")
        with open("/proc/self/uid_map", "w") as f:
            f.write(f"{uid} {uid} 1")
        with open("/proc/self/gid_map", "w") as f:
            f.write(f"{gid} {gid} 1")
        layers.append("user namespace")
    layers.append("network namespace")
    if flags & CLONE_NEWNS:
        try:
            _setup_mounts(
                params["workdir"], params["uid"] is not None, params["uid"], params["gid"], layers
            )
        except OSError as e:
            layers.append(f"mount namespace incomplete ({e})")
    if flags & CLONE_NEWPID:
        layers.append("pid namespace")
        return True
    return False


def _exit_like(status: int) -> None:
    os._exit(
        128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.waitstatus_to_exitcode(status)
    )


def _init_process(code_pid: int, status) -> None:
    """PID 1 of the namespace: reap every orphan until the code's process ends, then end all.

    Signals the code sends itself would be ignored by a PID 1, hence the separate
    process; how it died goes to the parent through the status pipe.
    """
    while True:
        pid, wait_status = os.waitpid(-1, 0)
        if pid == code_pid:
            break
    if os.WIFSIGNALED(wait_status):
        status.write(json.dumps({"signal": os.WTERMSIG(wait_status)}) + "\n")
    status.close()
    _exit_like(wait_status)


def _set_limits(params: dict, layers: list[str]) -> None:
    limits = {
        resource.RLIMIT_AS: params["memory_bytes"],
        resource.RLIMIT_CPU: params["cpu_seconds"],
        resource.RLIMIT_FSIZE: params["file_bytes"],
        resource.RLIMIT_NOFILE: params["open_files"],
        resource.RLIMIT_CORE: 0,
    }
    # RLIMIT_NPROC counts every process of the real uid, so it only makes sense for a
    # dedicated sandbox user, not for a developer's own account.
    if params["uid"] is not None:
        limits[resource.RLIMIT_NPROC] = params["processes"]
    for which, value in limits.items():
        hard = value + 1 if which == resource.RLIMIT_CPU else value  # SIGXCPU first, then SIGKILL
        resource.setrlimit(which, (value, hard))
    layers.append("rlimits")


def _drop_privileges(params: dict, layers: list[str]) -> None:
    if params["uid"] is None:
        return
    os.setgroups([])
    os.setgid(params["gid"])
    os.setuid(params["uid"])
    layers.append(f"user {params['user']} ({params['uid']})")


def _install_socket_guard(layers: list[str]) -> None:
    import _socket
    import socket

    blocked = {socket.AF_INET, socket.AF_INET6}

    def refuse(*_args, **_kwargs):
        raise PermissionError(1, "network access is disabled in this sandbox")

    original_init = socket.socket.__init__

    def guarded_init(self, family=-1, type=-1, proto=-1, fileno=None):
        if fileno is None and (family == -1 or family in blocked):
            refuse()
        original_init(self, family, type, proto, fileno)

    class GuardedSocket(_socket.socket):
        def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
            if fileno is None and (family == -1 or family in blocked):
                refuse()
            super().__init__(family, type, proto, fileno)

    socket.socket.__init__ = guarded_init
    _socket.socket = _socket.SocketType = GuardedSocket
    for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "create_connection"):
        setattr(socket, name, refuse)
    layers.append("socket guard")


def _run_user_code(source: str, path: str, workdir: str) -> None:
    module = types.ModuleType("__main__")
    module.__file__ = os.path.basename(path)
    sys.modules["__main__"] = module
    sys.path.insert(0, workdir)
    sys.argv = [module.__file__]
    try:
        exec(compile(source, module.__file__, "exec"), module.__dict__)  # noqa: S102 - the point
    except SystemExit:
        raise
    except BaseException as e:  # noqa: BLE001 - print like the interpreter would, minus our frame
        traceback.print_exception(type(e), e, e.__traceback__.tb_next if e.__traceback__ else None)
        sys.stderr.flush()
        os._exit(1)


def main() -> None:
    params = json.loads(sys.argv[1])
    with open(params["script"], encoding="utf-8") as f:  # before any mount can hide it
        source = f.read()
    layers: list[str] = []
    status = os.fdopen(params["status_fd"], "w")
    if _enter_namespaces(params, layers):  # three processes: this one, PID 1, the code's
        init_pid = os.fork()
        if init_pid:
            status.close()
            _exit_like(os.waitpid(init_pid, 0)[1])
        code_pid = os.fork()
        if code_pid:
            _init_process(code_pid, status)
    _set_limits(params, layers)
    if params["socket_guard"]:
        _install_socket_guard(layers)  # before dropping privileges: it imports modules
    hidden = (
        _hidden_interpreter_dirs(params["uid"], params["gid"]) if params["uid"] is not None else {}
    )
    if hidden:
        hidden_list = ", ".join(p for ps in hidden.values() for p in ps)
        sys.stderr.write(
            f"sandbox error: user '{params['user']}' cannot read the Python installation "
            f"({hidden_list}) "
            "and no mount namespace was available to expose it. Install Python where other users "
            "can read it, allow mount namespaces, or set sandbox_user='' "
            "(the code then runs as root).\n"
        )
        os._exit(126)
    _drop_privileges(params, layers)
    status.write(json.dumps(layers) + "\n")
    status.close()
    _run_user_code(source, params["script"], params["workdir"])


if __name__ == "__main__":
    main()
