"""Launcher that runs inside the sandbox process of :mod:`reagent.tools.python_exec`.

It is started as ``python -I -u _sandbox_child.py PARAMS_JSON`` by the parent (in a new
session, with an empty environment), then, in this order, before a single line of the
model's code runs:

1. **cgroup**: it writes itself into the call's cgroup (made by the parent, see
   :mod:`reagent.tools.sandbox_host`), so memory (tmpfs pages included) and the number
   of processes are limited across everything the code starts.
2. **an identity of its own**: as root, each call runs as uid = gid = ``uid_base`` + this
   launcher's pid, unique among live calls, so two calls never share an owner.
3. **a private view of the machine**, either by ``bubblewrap`` (this process execs
   ``bwrap``, which starts this file again as stage two, ``"stage": "inside"``) or by the
   in-house layers below, the fallback. Both give: new network, PID, IPC, UTS and mount
   namespaces; a new root holding only the system directories (``/usr``, ``/lib*``,
   ``/bin``), the interpreter's prefix and site-packages, read-only (nothing of the
   project, the host's data or its sockets); a fresh ``/proc`` of the PID namespace;
   a minimal ``/dev``; private size-capped tmpfs ``/tmp`` (holding the working
   directory) and ``/dev/shm``. In-house, ``unshare`` makes the namespaces (with a user
   namespace mapping our own ids when not root), PID 1 of the new PID namespace builds
   the root on a tmpfs and ``pivot_root`` s into it. When the namespaces or the new
   root cannot be made, what did take effect is reported and the code runs in the
   host's view, in a working directory only its uid may enter.
4. **the code's process**: PID 1 (in-house) or stage two (bwrap) forks it and waits,
   reaping orphans, then reports how it died; when it ends the PID namespace ends and
   the kernel kills everything it started. In the code's process: rlimits (address
   space, CPU, file size, open files, no core, processes for a per-call uid),
   ``no_new_privs``, the socket guard, then the drop to the call's uid.

The socket guard refuses AF_INET/AF_INET6/AF_PACKET sockets and name resolution in
``socket.socket`` and ``_socket.socket`` without replacing the class ``socket.socket``
derives from, so ``socketpair``, ``asyncio`` and ``multiprocessing`` keep working. It is
in-process (``socket.socket.__mro__[1]`` or ctypes get past it); the network namespace
and the file-system view (no host socket files; abstract unix sockets are per network
namespace) are the walls.

The layers that took effect are written as a JSON line to the status pipe the parent
passed (``status_fd``), followed by ``{"signal": N}`` when the code was killed by a
signal. Only the standard library is used and the file imports nothing beside it: in
stage two it runs from its own source text (``-c``), since the project is not visible
there. It is one file for that reason.
"""

import ctypes
import json
import os
import platform
import resource
import site
import sys
import sysconfig
import traceback
import types

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
PR_SET_NO_NEW_PRIVS = 38
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "ppc64le": 203, "s390x": 217}
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/localtime")
DEVICES = ("null", "zero", "full", "random", "urandom")

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


# --- the view: what of the host the code may see -------------------------------------------


def _view() -> list[tuple[str, str, str]]:
    """``(kind, source, dest)`` entries, kind ``bind`` (read-only) or ``symlink``.

    The system directories (or their symlinks, as on merged-/usr systems), the dynamic
    loader's cache and the interpreter: its prefixes and site-packages, not every
    ``sys.path`` entry (an editable install points there at the project itself).
    """
    view: list[tuple[str, str, str]] = []
    for path in SYSTEM_DIRS:
        if os.path.islink(path):
            view.append(("symlink", os.readlink(path), path))
        elif os.path.isdir(path):
            view.append(("bind", path, path))
    for path in SYSTEM_FILES:
        if os.path.isfile(path):
            view.append(("bind", os.path.realpath(path), path))
    paths = sysconfig.get_paths()
    wanted = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    wanted += [paths.get(k, "") for k in ("stdlib", "platstdlib", "purelib", "platlib")]
    wanted += [*site.getsitepackages(), os.path.dirname(os.path.realpath(sys.executable))]
    dirs = {os.path.realpath(p) for p in wanted if p and os.path.isdir(p)}
    covered = [dest for kind, _, dest in view if kind == "bind"]
    for path in sorted(dirs):  # parents sort before their children
        if not any(path == c or path.startswith(c.rstrip("/") + "/") for c in covered):
            view.append(("bind", path, path))
            covered.append(path)
    if sys.executable != os.path.realpath(sys.executable):  # e.g. a venv's bin/python link
        exe_dir = os.path.dirname(os.path.abspath(sys.executable))
        if not any(exe_dir == c or exe_dir.startswith(c.rstrip("/") + "/") for c in covered):
            view.append(("bind", exe_dir, exe_dir))
    return view


def _bwrap_argv(params: dict, view: list, source_fd: int, stage_two: dict) -> list[str]:
    disk = str(params["disk_bytes"])
    argv = [params["bwrap"], "--die-with-parent", "--new-session"]
    argv += ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if os.geteuid() == 0:  # no user namespace: the per-call uid is a real one on the host
        argv += ["--cap-drop", "ALL"]
        argv += [x for cap in ("CAP_SETUID", "CAP_SETGID", "CAP_CHOWN") for x in ("--cap-add", cap)]
    else:
        argv += ["--unshare-user"]
    # The private /tmp first: a view entry below it (an interpreter or venv under /tmp, as
    # in a CI checkout there) is bound on top, not hidden by the tmpfs.
    argv += ["--size", disk, "--tmpfs", "/tmp"]
    ancestors = set()
    for _, _, dest in view:  # bwrap would copy the host's modes (/root: 0700) onto them
        parts = dest.split("/")
        ancestors.update("/".join(parts[:i]) for i in range(2, len(parts)))
    for path in sorted(ancestors - {"/tmp", "/dev", "/dev/shm"}):  # keep the tmpfs modes (1777)
        argv += ["--perms", "0755", "--dir", path]
    for kind, source, dest in view:
        argv += ["--ro-bind", source, dest] if kind == "bind" else ["--symlink", source, dest]
    argv += ["--dev", "/dev", "--proc", "/proc", "--size", disk, "--tmpfs", "/dev/shm"]
    argv += ["--remount-ro", "/", "--chdir", "/"]
    stage_two = {**stage_two, "stage": "inside", "source_fd": source_fd}
    with open(__file__, encoding="utf-8") as f:
        launcher = f.read()
    return [*argv, "--", sys.executable, "-I", "-u", "-c", launcher, json.dumps(stage_two)]


def _pivot_root(new_root: str) -> None:
    number = SYS_PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise OSError(0, f"pivot_root: unknown syscall number on {platform.machine()}")
    os.chdir(new_root)
    os.mkdir(".old-root")
    if _libc.syscall(number, b".", b".old-root") != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"pivot_root: {os.strerror(err)}")
    os.chdir("/")
    if _libc.umount2(b"/.old-root", 2) != 0:  # MNT_DETACH
        err = ctypes.get_errno()
        raise OSError(err, f"umount old root: {os.strerror(err)}")
    os.rmdir("/.old-root")


def _build_root(params: dict, view: list, fresh_proc: bool) -> None:
    """In-house: a tmpfs root holding ``view`` read-only, /dev, /proc, /tmp, /dev/shm; pivot in."""
    root = params["workdir"]  # an empty host dir of this call: only the mount point
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=4m")
    # The private /tmp first: a view entry below it (a venv under /tmp) is bound on top.
    size = f"size={params['disk_bytes']},mode=1777"
    os.makedirs(root + "/tmp")
    _mount("tmpfs", root + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, size)
    for kind, source, dest in view:
        target = root + dest
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if kind == "symlink":
            os.symlink(source, target)
            continue
        if os.path.isdir(source):
            os.makedirs(target, exist_ok=True)
        else:
            open(target, "w").close()
        _mount(source, target, None, MS_BIND | MS_REC)
        flags = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | _kept_flags(target)
        _mount(None, target, None, flags)
    dev = root + "/dev"
    os.makedirs(dev)
    _mount("tmpfs", dev, "tmpfs", MS_NOSUID, "mode=755,size=64k")
    for name in DEVICES:
        open(f"{dev}/{name}", "w").close()
        _mount(f"/dev/{name}", f"{dev}/{name}", None, MS_BIND)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"{dev}/{name}")
    os.makedirs(dev + "/shm")
    _mount("tmpfs", dev + "/shm", "tmpfs", MS_NOSUID | MS_NODEV, size)
    if fresh_proc:
        os.makedirs(root + "/proc")
        _mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _mount(None, dev, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID, "mode=755,size=64k")
    _pivot_root(root)
    _mount(None, "/", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, "mode=755,size=4m")


def _layers_of_view(params: dict, fresh_proc: bool) -> list[str]:
    layers = ["private root (system and interpreter dirs read-only)"]
    if fresh_proc:
        layers.append("fresh /proc")
    layers.append(f"private /tmp and /dev/shm (tmpfs, {params['disk_bytes'] >> 20} MiB each)")
    return layers


# --- in-house namespaces ------------------------------------------------------------------


def _enter_namespaces(params: dict, layers: list[str]) -> tuple[bool, bool]:
    """Try the namespace layers; returns (new PID namespace, new mount namespace)."""
    if not params["namespaces"] or not sys.platform.startswith("linux"):
        return False, False
    root = os.geteuid() == 0
    base = CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
    uid, gid = os.getuid(), os.getgid()
    for flags in (base, CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWPID, CLONE_NEWNET | CLONE_NEWPID,
                  CLONE_NEWNET):
        if _unshare(flags if root else flags | CLONE_NEWUSER):
            break
    else:
        return False, False
    if not root:  # map our own ids so files we create keep a valid owner
        with open("/proc/self/setgroups", "w") as f:
            f.write("deny")
        with open("/proc/self/uid_map", "w") as f:
            f.write(f"{uid} {uid} 1")
        with open("/proc/self/gid_map", "w") as f:
            f.write(f"{gid} {gid} 1")
        layers.append("user namespace")
    layers.append("network namespace")
    if flags & CLONE_NEWIPC:
        layers.append("ipc namespace")
    if flags & CLONE_NEWPID:
        layers.append("pid namespace")
    return bool(flags & CLONE_NEWPID), bool(flags & CLONE_NEWNS)


def _exit_like(status: int) -> None:
    os._exit(
        128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.waitstatus_to_exitcode(status)
    )


def _init_process(code_pid: int, status) -> None:
    """Reap every orphan until the code's process ends, then end (and with PID 1, all).

    Signals the code sends itself would be ignored by a PID 1, hence the separate
    process; how it died goes to the parent through the status pipe.
    """
    while True:
        try:
            pid, wait_status = os.waitpid(-1, 0)
        except ChildProcessError:
            os._exit(1)
        if pid == code_pid:
            break
    if os.WIFSIGNALED(wait_status):
        status.write(json.dumps({"signal": os.WTERMSIG(wait_status)}) + "\n")
    status.close()
    _exit_like(wait_status)


# --- the code's process ---------------------------------------------------------------------


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
    if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0:
        layers.append("no new privileges")


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

    blocked = {socket.AF_INET, socket.AF_INET6, getattr(socket, "AF_PACKET", -2)}
    original = _socket.socket

    def check(family, fileno) -> None:
        if fileno is None and (family == -1 or family in blocked):
            raise PermissionError(1, "network access is disabled in this sandbox")

    def refuse(*_args, **_kwargs):
        raise PermissionError(1, "network access is disabled in this sandbox")

    socket_init = socket.socket.__init__

    def guarded_init(self, family=-1, type=-1, proto=-1, fileno=None):
        check(family, fileno)
        socket_init(self, family, type, proto, fileno)

    class GuardedSocket(original):  # what ``_socket.socket`` names from now on
        def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
            check(family, fileno)
            original.__init__(self, family, type, proto, fileno)  # not super(): see below

    # socket.socket.__init__ calls ``_socket.socket.__init__(self, ...)`` by module lookup,
    # with ``self`` a socket.socket (a subclass of the original class, not of GuardedSocket),
    # so GuardedSocket.__init__ must accept any instance of the original class.
    socket.socket.__init__ = guarded_init
    _socket.socket = GuardedSocket
    for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr",
                 "create_connection"):
        setattr(socket, name, refuse)
    layers.append("socket guard")


def _hidden_interpreter(uid: int, gid: int) -> list[str]:
    """Interpreter dirs ``uid`` cannot reach in the host's view (e.g. pyenv under /root)."""
    hidden = []
    for path in {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix) if p}:
        parts = path.split("/")
        for i in range(2, len(parts) + 1):
            st = os.stat("/".join(parts[:i]))
            bit = 0o100 if st.st_uid == uid else 0o010 if st.st_gid == gid else 0o001
            if not st.st_mode & bit:
                hidden.append(path)
                break
    return hidden


def _run_user_code(source: str, workdir: str) -> None:
    module = types.ModuleType("__main__")
    module.__file__ = "main.py"
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


def _start_code(params: dict, layers: list[str], source: str, status, private_root: bool) -> None:
    """Make the working dir, fork the code's process and wait for it here; never returns."""
    workdir = "/tmp/" + os.path.basename(params["workdir"]) if private_root else params["workdir"]
    if private_root:
        os.mkdir(workdir, 0o700)
        for shared in ("/tmp", "/dev/shm"):
            os.chmod(shared, 0o1777)
    script = os.path.join(workdir, "main.py")  # multiprocessing's spawn re-reads __main__
    with open(script, "w", encoding="utf-8") as f:
        f.write(source)
    if params["uid"] is not None:
        os.chmod(workdir, 0o700)  # before chown: after it we are no longer its owner
        os.chown(script, params["uid"], params["gid"])
        os.chown(workdir, params["uid"], params["gid"])
        hidden = [] if private_root else _hidden_interpreter(params["uid"], params["gid"])
        if hidden:
            sys.stderr.write(
                f"sandbox error: the sandbox user cannot read the Python installation "
                f"({', '.join(hidden)}) and no private root could be built to expose it. Install "
                "Python where other users can read it, allow mount namespaces (or install "
                "bubblewrap), or set sandbox_user='' (the code then runs as root).\n"
            )
            os._exit(126)
    code_pid = os.fork()
    if code_pid:
        _init_process(code_pid, status)
    _set_limits(params, layers)
    if params["socket_guard"]:
        _install_socket_guard(layers)  # before dropping privileges: it imports modules
    _drop_privileges(params, layers)
    os.chdir(workdir)  # as the call's uid: only it may enter
    os.environ["HOME"] = os.environ["TMPDIR"] = workdir
    status.write(json.dumps(layers) + "\n")
    status.close()
    _run_user_code(source, workdir)


def _stage_two(params: dict) -> None:
    """Inside bubblewrap: everything but the view, which bwrap has built."""
    with os.fdopen(params["source_fd"], encoding="utf-8") as f:
        source = f.read()
    status = os.fdopen(params["status_fd"], "w")
    _start_code(params, params["layers"], source, status, private_root=True)


def main() -> None:
    params = json.loads(sys.argv[1])
    if params.get("stage") == "inside":
        _stage_two(params)
        return
    with open(params["script"], encoding="utf-8") as f:  # before any mount can hide it
        source = f.read()
    layers: list[str] = []
    for procs in params["cgroup_procs"]:
        with open(procs, "w") as f:
            f.write(str(os.getpid()))
    if params["cgroup"]:
        layers.append(params["cgroup"])
    if params["per_call_uid"]:
        params["uid"] = params["gid"] = params["uid_base"] + os.getpid()
    if params["bwrap"]:
        source_fd = os.memfd_create("main.py", 0)  # inherited by bwrap and stage two
        os.write(source_fd, source.encode("utf-8"))
        os.lseek(source_fd, 0, os.SEEK_SET)
        layers += [params["bwrap_version"]] + ([] if os.geteuid() == 0 else ["user namespace"])
        layers += ["network namespace", "ipc namespace", "pid namespace"]
        layers += _layers_of_view(params, fresh_proc=True)
        argv = _bwrap_argv(params, _view(), source_fd, {**params, "layers": layers})
        os.execv(argv[0], argv)  # the status pipe stays open for stage two
    status = os.fdopen(params["status_fd"], "w")
    if params["namespaces"]:
        why = f" ({params['bwrap_why_not']})" if params["bwrap_why_not"] else ""
        layers.append("in-house namespaces" + why)
    new_pid, new_mounts = _enter_namespaces(params, layers)
    view = _view() if new_mounts else []
    if new_pid:  # three processes: this one, PID 1 of the namespace, the code's
        init_pid = os.fork()
        if init_pid:
            status.close()
            _exit_like(os.waitpid(init_pid, 0)[1])
    private_root = False
    if new_mounts:
        try:
            _build_root(params, view, fresh_proc=new_pid)
            private_root = True
            layers += _layers_of_view(params, fresh_proc=new_pid)
        except OSError as e:
            _libc.umount2(params["workdir"].encode(), 2)  # uncover the working dir (MNT_DETACH)
            layers.append(f"no private root ({e})")
    _start_code(params, layers, source, status, private_root)


if __name__ == "__main__":
    main()
