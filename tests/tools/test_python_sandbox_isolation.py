"""Hostile code against the python sandbox, driven the way the agent loop drives it.

Each snippet is one tool call built by :func:`reagent.tools.factory.build_tools` and run
through :func:`reagent.tools.base.run_tool_calls` on a thread pool (the calls of a turn
run in parallel), once with bubblewrap and once with the in-house layers, the fallback.
A test that needs a layer this machine lacks skips and names the layer; it never passes
without having run. Snippets print ``ESCAPE ...`` when they get through, so the
assertions read the agent's own view.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from reagent.records import ToolCall
from reagent.tools.base import run_tool_calls
from reagent.tools.factory import ToolsConfig, build_tools
from reagent.tools.python_exec import PythonSandboxConfig, PythonTool
from reagent.tools.sandbox_host import probe_bwrap

IS_ROOT = os.geteuid() == 0
PROJECT = Path(__file__).resolve().parents[2]
BWRAP = probe_bwrap()


@pytest.fixture(scope="module", params=["bwrap", "inhouse"])
def isolation(request) -> str:
    if request.param == "bwrap" and not BWRAP.works:
        pytest.skip(f"bubblewrap layer absent: {BWRAP.why_not}")
    return request.param


def _turn(isolation: str, *codes: str, **settings) -> list[str]:
    """One agent turn: every snippet is a python call, all run in parallel."""
    tools = build_tools(["python"], ToolsConfig(python_isolation=isolation, **settings))
    calls = [
        ToolCall(id=f"call_{i}", name="python", arguments=json.dumps({"code": code}))
        for i, code in enumerate(codes)
    ]
    with ThreadPoolExecutor(len(calls)) as pool:
        return run_tool_calls(tools, calls, pool)


@functools.cache
def _layers(isolation: str) -> list[str]:
    """The layers a default call gets here (one run per isolation, for the skips)."""
    return PythonTool(PythonSandboxConfig(isolation=isolation)).run("pass").layers


def _need(layer: str, layers: list[str]) -> None:
    if not any(x.startswith(layer) for x in layers):
        pytest.skip(f"layer '{layer}' absent on this machine (active: {layers})")


def test_layers_are_reported(isolation):
    layers = _layers(isolation)
    assert "socket guard" in layers and "rlimits" in layers
    if isolation == "bwrap":
        assert layers[0].startswith("cgroup") or layers[0].startswith("bubblewrap")
        assert any(x.startswith("bubblewrap") for x in layers)
    else:
        assert "in-house namespaces" in layers
        assert not any(x.startswith("bubblewrap") for x in layers)


def test_two_calls_of_one_turn_cannot_read_each_other(isolation):
    layers = _layers(isolation)
    if not any(x.startswith(("private root", "user per-call")) for x in layers):
        pytest.skip(f"neither a private root nor per-call uids on this machine (active: {layers})")
    secret = uuid.uuid4().hex
    writer = (
        "import os, time\n"
        f"open('notes.txt', 'w').write('{secret}')\n"
        "os.chmod('notes.txt', 0o644)\n"
        "print('wrote', os.getcwd())\n"
        "time.sleep(1.5)\n"
    )
    reader = (
        "import glob, os, time\n"
        "time.sleep(0.5)\n"
        "paths = glob.glob('/tmp/*/*') + glob.glob('/tmp/*') + glob.glob('/proc/*/cwd/*')\n"
        "for path in paths:\n"
        "    try:\n"
        "        text = open(path).read()\n"
        f"        if '{secret[::-1]}'[::-1] in text:  # not literally in this call's main.py\n"
        "            print('ESCAPE read', path)\n"
        "    except OSError:\n"
        "        pass\n"
        "print('looked at', len(paths))\n"
    )
    written, read = _turn(isolation, writer, reader)
    assert written.startswith("wrote"), written
    assert "ESCAPE" not in read and "looked at" in read, read


@pytest.mark.skipif(not IS_ROOT, reason="as a user the code may write what that user may")
def test_run_lock_is_not_written_on_the_host(isolation):
    _need("private root", _layers(isolation))  # /run/lock is world-writable (1777) on hosts
    name = f"reagent-test-{uuid.uuid4().hex}"
    code = (
        f"for d in ('/run/lock', '/var/lock', '/run'):\n"
        "    try:\n"
        f"        open(d + '/{name}', 'w').write('x')\n"
        "        print('wrote', d)\n"
        "    except OSError as e:\n"
        "        print('refused', d, type(e).__name__)\n"
    )
    (out,) = _turn(isolation, code)
    assert out.count("refused") + out.count("wrote") == 3, out
    for d in ("/run/lock", "/var/lock", "/run"):
        assert not Path(d, name).exists(), f"{d}/{name} reached the host"


def test_host_unix_sockets_are_not_reachable(isolation, tmp_path):
    layers = _layers(isolation)
    _need("private root", layers)  # hides socket files
    _need("network namespace", layers)  # abstract unix sockets belong to one
    folder = Path("/tmp") / f"reagent-sock-{uuid.uuid4().hex[:8]}"
    folder.mkdir(mode=0o777)
    folder.chmod(0o777)
    path = str(folder / "s")
    abstract = f"\0reagent-test-{uuid.uuid4().hex}"
    servers = []
    try:
        for address in (path, abstract):
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            server.bind(address)
            server.listen(4)
            server.setblocking(False)
            servers.append(server)
        os.chmod(path, 0o777)
        code = (
            "import socket\n"
            "raw = socket.socket.__mro__[1]\n"
            f"for address in ({path!r}, {abstract!r}):\n"
            "    for make in (lambda: raw(socket.AF_UNIX), lambda: socket.socket(socket.AF_UNIX)):\n"
            "        try:\n"
            "            make().connect(address)\n"
            "            print('ESCAPE connected', repr(address))\n"
            "        except OSError as e:\n"
            "            print('refused', type(e).__name__)\n"
        )
        (out,) = _turn(isolation, code)
        assert "ESCAPE" not in out and out.count("refused") == 4, out
        for server in servers:
            with pytest.raises(BlockingIOError):
                server.accept()
    finally:
        for server in servers:
            server.close()
        os.unlink(path)
        folder.rmdir()


def test_proc_shows_no_host_process_and_no_argv_secret(isolation):
    _need("fresh /proc", _layers(isolation))
    secret = f"sk-{uuid.uuid4().hex}"
    host = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", secret])
    try:
        code = (
            "import os\n"
            "pids = [p for p in os.listdir('/proc') if p.isdigit()]\n"
            "print('pids', len(pids))\n"
            "for pid in pids:\n"
            "    for name in ('cmdline', 'environ'):\n"
            "        try:\n"
            "            data = open(f'/proc/{pid}/{name}', 'rb').read()\n"
            f"            if b'{secret}' in data:\n"
            "                print('ESCAPE', pid, name)\n"
            "        except OSError:\n"
            "            pass\n"
        )
        (out,) = _turn(isolation, code)
    finally:
        host.kill()
        host.wait()
    assert "ESCAPE" not in out, out
    visible = int(out.split("pids ")[1].split()[0])
    assert visible <= 4, out  # the namespace's init, the launcher, the code: not ~100 host PIDs


def test_world_readable_host_files_are_not_readable(isolation, tmp_path):
    _need("private root", _layers(isolation))
    mine = Path("/tmp") / f"reagent-readable-{uuid.uuid4().hex}.txt"
    mine.write_text("host data")
    mine.chmod(0o644)
    targets = [str(mine), str(PROJECT / "pyproject.toml"), "/etc/passwd"]
    targets += [str(p) for p in sorted((PROJECT / "configs").glob("*.yaml"))[:1]]
    try:
        code = (
            f"for path in {targets!r}:\n"
            "    try:\n"
            "        open(path).read()\n"
            "        print('ESCAPE read', path)\n"
            "    except OSError as e:\n"
            "        print('refused', type(e).__name__)\n"
        )
        (out,) = _turn(isolation, code)
    finally:
        mine.unlink()
    assert "ESCAPE" not in out and out.count("refused") == len(targets), out


def test_memory_bomb_across_five_forks_is_limited(isolation):
    _need("cgroup", _layers(isolation))
    code = (
        "import os, time\n"
        "kids = []\n"
        "for i in range(5):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        try:\n"
        "            block = b'x' * (100 << 20)\n"
        "            time.sleep(1.0)\n"
        "            os._exit(0)\n"
        "        except MemoryError:\n"
        "            os._exit(3)\n"
        "    kids.append(pid)\n"
        "held = sum(os.waitpid(pid, 0)[1] == 0 for pid in kids)\n"
        "print('held', held)\n"
    )
    (out,) = _turn(isolation, code, python_memory_mb=256)
    assert "held" in out, out
    assert int(out.split("held ")[1].split()[0]) <= 2, out  # 256 MiB hold two 100 MB blocks


def test_disk_bomb_is_limited(isolation):
    """600 MB written in 0.2 s before; now /tmp (with the work dir) and /dev/shm are capped."""
    _need("private /tmp", _layers(isolation))
    code = (
        "written = 0\n"
        "chunk = b'x' * (8 << 20)\n"
        "for where in ('.', '/tmp', '/dev/shm'):\n"
        "    for i in range(40):\n"
        "        try:\n"
        "            with open(f'{where}/fill{i}', 'wb') as f:\n"
        "                f.write(chunk)\n"
        "            written += len(chunk)\n"
        "        except OSError:\n"
        "            break\n"
        "print('written MiB', written >> 20)\n"
    )
    tool = PythonTool(PythonSandboxConfig(isolation=isolation, max_disk_mb=32))
    out = tool(code=code)
    assert "written MiB" in out, out
    # 32 MiB for /tmp (the work dir is in it) + 32 MiB for /dev/shm, not 3 x 320 MiB
    assert int(out.split("written MiB ")[1].split()[0]) <= 64, out


LEGITIMATE = """
import asyncio, multiprocessing, socket

async def main():
    await asyncio.sleep(0)
    return "asyncio ok"

def square(x):
    return x * x

if __name__ == "__main__":
    print(asyncio.run(main()))
    a, b = socket.socketpair()
    a.sendall(b"ping")
    print("socketpair", b.recv(4).decode())
    a.close(); b.close()
    lock = multiprocessing.Lock()
    with lock:
        print("lock ok")
    for method in ("fork", "spawn"):
        with multiprocessing.get_context(method).Pool(2) as pool:
            print(method, pool.map(square, range(4)))
"""


def test_legitimate_code_still_works(isolation):
    (out,) = _turn(isolation, LEGITIMATE, python_timeout_s=30)
    assert out.splitlines() == [
        "asyncio ok",
        "socketpair ping",
        "lock ok",
        "fork [0, 1, 4, 9]",
        "spawn [0, 1, 4, 9]",
    ], out


def test_network_is_still_blocked_with_socket_usable(isolation):
    _need("network namespace", _layers(isolation))  # __mro__[1] gets past the guard
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    server.setblocking(False)
    try:
        code = (
            "import socket\n"
            "raw = socket.socket.__mro__[1]\n"
            f"for make in (socket.socket, lambda: raw(socket.AF_INET)):\n"
            "    try:\n"
            f"        make().connect(('127.0.0.1', {server.getsockname()[1]}))\n"
            "        print('ESCAPE connected')\n"
            "    except OSError as e:\n"
            "        print('refused', type(e).__name__)\n"
        )
        (out,) = _turn(isolation, code)
        assert "ESCAPE" not in out and out.count("refused") == 2, out
        with pytest.raises(BlockingIOError):
            server.accept()
    finally:
        server.close()


def test_auto_falls_back_to_the_in_house_layers_without_bwrap(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on it
    result = PythonTool(PythonSandboxConfig(isolation="auto")).run("print('hi')")
    assert result.output.strip() == "hi"
    assert not any(x.startswith("bubblewrap") for x in result.layers)
    assert any(x.startswith("in-house namespaces (bubblewrap not installed") for x in result.layers)
    with pytest.raises(ValueError, match="bubblewrap not installed"):
        PythonTool(PythonSandboxConfig(isolation="bwrap"))


def test_isolation_choice_is_checked():
    with pytest.raises(ValueError, match="isolation='docker' is not one of auto, bwrap, inhouse"):
        PythonSandboxConfig(isolation="docker")
    with pytest.raises(ValueError, match="uid_base=0 must be in"):
        PythonSandboxConfig(uid_base=0)


def test_each_call_has_its_own_uid(isolation):
    if not IS_ROOT:
        pytest.skip("per-call uids need root")
    outs = _turn(isolation, *["import os, time; time.sleep(0.3); print(os.getuid())"] * 3)
    uids = {int(o) for o in outs}
    assert len(uids) == 3 and 0 not in uids, outs


def test_env_command_reports_the_layers(capsys):
    from reagent.cli import env

    env._sandbox_report()  # the part of `reagent env` about the sandbox (no torch import)
    printed = capsys.readouterr().out
    assert "python sandbox layers:" in printed and "socket guard" in printed
    assert "bubblewrap:" in printed


def test_sandbox_leaves_no_cgroup_behind():
    _need("cgroup v1", _layers("inhouse"))
    own = Path("/proc/self/cgroup").read_text().splitlines()
    memory = [line.split(":", 2)[2] for line in own if ":memory:" in line]
    folder = Path("/sys/fs/cgroup/memory") / memory[0].lstrip("/")
    tool = PythonTool(PythonSandboxConfig(isolation="inhouse"))
    name = os.path.basename(tool.run("import os; print(os.getcwd())").output.strip())
    assert name.startswith("reagent-py-")  # the call's cgroup is named after its work dir
    assert not (folder / name).exists()


AS_USER = """
import sys
sys.path.insert(0, {project!r})
from reagent.tools.python_exec import PythonSandboxConfig, PythonTool
code = '''
import os
for path in {targets!r}:
    try:
        open(path).read()
        print("ESCAPE read", path)
    except OSError:
        pass
print("uid", os.getuid(), "pids", sum(p.isdigit() for p in os.listdir("/proc")))
'''
result = PythonTool(PythonSandboxConfig(isolation={isolation!r}, timeout_s=20)).run(code)
print(result.output.strip())
print("LAYERS", "|".join(result.layers))
"""


def test_an_unprivileged_caller_gets_a_user_namespace_and_a_private_root(isolation):
    """CI runs as root; this drives the tool as ``nobody``, the path of a developer's account."""
    python = "/usr/bin/python3"
    if not IS_ROOT or not os.path.exists("/usr/bin/setpriv") or not os.path.exists(python):
        pytest.skip("needs root, setpriv and /usr/bin/python3 to start a caller as nobody")
    for parent in [PROJECT, *PROJECT.parents]:
        if not os.stat(parent).st_mode & 0o001:
            pytest.skip(f"{parent} is not searchable by nobody; cannot import the project")
    folder = Path(tempfile.mkdtemp(prefix="reagent-user-", dir="/tmp"))
    folder.chmod(0o755)
    readable, script = folder / "data.txt", folder / "as_user.py"
    readable.write_text("host data")
    targets = [str(readable), str(PROJECT / "pyproject.toml")]
    script.write_text(AS_USER.format(project=str(PROJECT), targets=targets, isolation=isolation))
    for path in (readable, script):
        path.chmod(0o644)
    try:
        done = subprocess.run(
            ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
             python, "-I", str(script)],
            capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"},
        )
    finally:
        shutil.rmtree(folder)
    if "ModuleNotFoundError" in done.stderr or "Permission denied" in done.stderr:
        pytest.skip(f"the project cannot be imported as nobody here: {done.stderr[-300:]}")
    assert done.returncode == 0, done.stderr
    layers = done.stdout.split("LAYERS ")[1].strip().split("|")
    _need("private root", layers)
    assert "user namespace" in layers, layers
    assert "ESCAPE" not in done.stdout, done.stdout
    assert "uid 65534 " in done.stdout and int(done.stdout.split("pids ")[1].split()[0]) <= 4
