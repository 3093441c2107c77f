"""Hostile-snippet battery against the python sandbox (run by hand; needs no network).

    python benchmarks/sandbox_battery.py [key=value ...]    # PythonSandboxConfig overrides

Runs the escapes of issue 21 (cross-call reads, /run/lock, host unix sockets, /proc,
world-readable host files, memory and disk bombs across processes, network) and the
legitimate code the old socket guard broke, each as a fresh tool call, and prints one
line per snippet, ``HELD``/``ESCAPED`` (or ``WORKS``/``BROKEN``), then the totals and
the layers. It only uses ``PythonTool(PythonSandboxConfig(**overrides))``, so the same
script measures an older checkout (``PYTHONPATH=/path/to/old``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from reagent.tools.python_exec import PythonSandboxConfig, PythonTool

PROJECT = Path(__file__).resolve().parents[1]


def _value(text: str) -> object:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def _try_each(targets: list[str], action: str) -> str:
    """Code that runs ``action`` (using ``t``) on each target, printing ESCAPE when it works."""
    return (
        f"for t in {targets!r}:\n"
        "    try:\n"
        f"        {action}\n"
        "        print('ESCAPE', t)\n"
        "    except Exception as e:\n"
        "        print('held', t, type(e).__name__)\n"
    )


def battery(make_tool) -> list[tuple[str, bool, str]]:
    """(name, escaped-or-broken, output) for every snippet."""
    results = []
    tool = make_tool()

    def run(name: str, code: str, bad=lambda out: "ESCAPE" in out, tool=tool) -> str:
        out = tool(code=code)
        results.append((name, bad(out), out))
        return out

    secret = uuid.uuid4().hex
    writer = f"import time\nopen('n.txt', 'w').write('{secret}')\ntime.sleep(1.5)\nprint('wrote')"
    reader = (
        "import glob, time\ntime.sleep(0.5)\n"
        "for p in glob.glob('/tmp/*/*') + glob.glob('/proc/*/cwd/*'):\n"
        "    try:\n"
        f"        print('ESCAPE', p) if '{secret[::-1]}'[::-1] in open(p).read() else None\n"
        "    except Exception:\n        pass\n"
    )
    with ThreadPoolExecutor(2) as pool:
        outs = list(pool.map(lambda c: tool(code=c), [writer, reader]))
    results.append(("cross-call read of a sibling's work dir", "ESCAPE" in outs[1], outs[1]))

    name = f"battery-{uuid.uuid4().hex}"
    lock_paths = [f"/run/lock/{name}", f"/tmp/{name}", f"/dev/shm/{name}", f"/var/tmp/{name}"]
    run("writes reaching the host (/run/lock, /tmp, /dev/shm, /var/tmp)",
        _try_each(lock_paths, "open(t, 'w').write('x')"),
        bad=lambda out: any(os.path.exists(p) for p in lock_paths))
    for p in lock_paths:
        if os.path.exists(p):
            os.unlink(p)

    folder = tempfile.mkdtemp(prefix="battery-sock-", dir="/tmp")
    os.chmod(folder, 0o777)
    path, abstract = f"{folder}/s", f"\0battery-{uuid.uuid4().hex}"
    servers = []
    for address in (path, abstract):
        s = socket.socket(socket.AF_UNIX)
        s.bind(address)
        s.listen(4)
        servers.append(s)
    os.chmod(path, 0o777)
    for label, make in (("socket.socket", "socket.socket(socket.AF_UNIX)"),
                        ("__mro__[1]", "socket.socket.__mro__[1](socket.AF_UNIX)")):
        run(f"host unix sockets via {label}",
            "import socket\n" + _try_each([path, abstract], f"{make}.connect(t)"))
    for s in servers:
        s.close()
    os.unlink(path)
    os.rmdir(folder)

    host = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", f"sk-{secret}"])
    run("/proc shows host PIDs",
        "import os\nn = sum(p.isdigit() for p in os.listdir('/proc'))\nprint('ESCAPE' if n > 4 else 'held', n)")
    run("host argv secret via /proc/*/cmdline",
        "import glob\nfor p in glob.glob('/proc/*/cmdline'):\n    try:\n"
        f"        print('ESCAPE', p) if b'sk-{secret}' in open(p, 'rb').read() else None\n"
        "    except Exception:\n        pass\n")
    host.kill()
    host.wait()

    readable = Path(tempfile.mkdtemp(prefix="battery-", dir="/tmp"))
    readable.chmod(0o755)
    (readable / "data.txt").write_text("host data")
    (readable / "data.txt").chmod(0o644)
    run("world-readable host files (project, /tmp, /etc/passwd)",
        _try_each([str(PROJECT / "pyproject.toml"), str(readable / "data.txt"), "/etc/passwd"],
                  "open(t).read()"))
    (readable / "data.txt").unlink()
    readable.rmdir()

    small = make_tool(memory_mb=256)
    run("memory bomb: 5 forks x 100 MB under memory_mb=256",
        "import os, time\nkids = []\nfor i in range(5):\n    pid = os.fork()\n    if pid == 0:\n"
        "        try:\n            b = b'x' * (100 << 20); time.sleep(1.5); os._exit(0)\n"
        "        except MemoryError:\n            os._exit(3)\n    kids.append(pid)\n"
        "held = sum(os.waitpid(p, 0)[1] == 0 for p in kids)\nprint('ESCAPE' if held > 2 else 'held', held)",
        tool=small)
    run("disk bomb: 600 MB in 8 MB files over the work dir, /tmp and /dev/shm",
        "w = 0\nfor d in ('.', '/tmp', '/dev/shm'):\n    for i in range(80):\n        try:\n"
        "            open(f'{d}/f{i}', 'wb').write(b'x' * (8 << 20)); w += 8\n"
        "        except OSError:\n            break\nprint('ESCAPE' if w >= 600 else 'held', w, 'MB')")

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    port = server.getsockname()[1]
    run("TCP to a local server (socket.socket, __mro__[1])",
        "import socket\n" + _try_each(
            ["socket.socket()", "socket.socket.__mro__[1](socket.AF_INET)"],
            f"eval(t).connect(('127.0.0.1', {port}))"))
    server.close()

    legit = {
        "asyncio.run": "import asyncio\nasync def f():\n    return 1\nprint('OK', asyncio.run(f()))",
        "socketpair": "import socket\na, b = socket.socketpair(); a.send(b'x'); print('OK', b.recv(1))",
        "multiprocessing Lock": "import multiprocessing as m\nwith m.Lock():\n    print('OK')",
        "multiprocessing Pool (fork)": "import multiprocessing as m\n"
        "with m.get_context('fork').Pool(2) as p:\n    print('OK', p.map(abs, [-1, -2]))",
        "multiprocessing Pool (spawn)": "import multiprocessing as m\nif __name__ == '__main__':\n"
        "    with m.get_context('spawn').Pool(2) as p:\n        print('OK', p.map(abs, [-1, -2]))",
    }
    for label, code in legit.items():
        run(f"legitimate: {label}", code, bad=lambda out: not out.startswith("OK"))
    return results


def main() -> None:
    overrides = dict(arg.split("=", 1) for arg in sys.argv[1:])
    settings = {"timeout_s": 20.0, **{k: _value(v) for k, v in overrides.items()}}

    def make_tool(**extra):
        return PythonTool(PythonSandboxConfig(**{**settings, **extra}))

    results = battery(make_tool)
    for name, bad, out in results:
        legit = name.startswith("legitimate")
        verdict = ("BROKEN" if bad else "WORKS") if legit else ("ESCAPED" if bad else "HELD")
        print(f"{verdict:8} {name}" + (f"\n         {out[-300:]!r}" if bad else ""))
    hostile = [r for r in results if not r[0].startswith("legitimate")]
    legit = [r for r in results if r[0].startswith("legitimate")]
    print(f"\nescaped {sum(r[1] for r in hostile)} of {len(hostile)} hostile snippets; "
          f"broken {sum(r[1] for r in legit)} of {len(legit)} legitimate ones")
    print("layers:", make_tool().run("pass").layers)


if __name__ == "__main__":
    main()
