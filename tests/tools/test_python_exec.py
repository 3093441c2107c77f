"""The python sandbox: limits, isolation layers and output handling, on the real machine.

Each run starts a real interpreter (~50 ms); only the time-limit test waits (2 s).
Tests that need root (file-system isolation) or a kernel layer skip when it is
absent, naming the layer.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from pathlib import Path

import pytest

from reagent.tools.python_exec import PythonSandboxConfig, PythonTool, cut_middle

IS_ROOT = os.geteuid() == 0


@pytest.fixture(scope="module")
def tool() -> PythonTool:
    return PythonTool(PythonSandboxConfig(timeout_s=10))


def test_normal_code_runs(tool):
    assert tool(code="print(2 + 2)") == "4"
    result = tool.run("import json, math\nprint(json.dumps({'r': math.sqrt(16)}))")
    assert (result.output.strip(), result.exit_code, result.timed_out) == ('{"r": 4.0}', 0, False)
    assert "socket guard" in result.layers and "rlimits" in result.layers


def test_errors_and_exit_codes_are_reported(tool):
    text = tool(code="x = 1\n1 / 0")
    assert (
        'File "main.py", line 2' in text
        and "ZeroDivisionError" in text
        and text.endswith("[exit code 1]")
    )
    assert tool(code="import sys; print('bye'); sys.exit(3)") == "bye\n[exit code 3]"
    assert (
        tool(code="import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
        == "[killed by signal SIGKILL]"
    )
    assert tool(code="x = 1") == "[no output]"
    assert tool(code="   ").startswith("Error:")


def test_infinite_loop_is_killed_near_the_limit():
    tool = PythonTool(PythonSandboxConfig(timeout_s=2))
    start = time.monotonic()
    text = tool(code="print('started', flush=True)\nwhile True:\n    pass")
    elapsed = time.monotonic() - start
    assert text == "started\n[killed: time limit 2 s exceeded]"
    assert 2.0 <= elapsed < 2.0 + 1.0


def test_allocating_4_gib_fails(tool):
    result = tool.run("x = bytearray(4 * 1024**3)\nprint('allocated')")
    assert "MemoryError" in result.output and "allocated" not in result.output
    assert result.exit_code == 1


def _listening_server() -> socket.socket:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    return server


CONNECT = """
import _socket, socket
for make in (lambda: socket.create_connection(("127.0.0.1", {port}), timeout=2),
             lambda: _socket.socket().connect(("127.0.0.1", {port}))):
    try:
        make()
        print("CONNECTED")
    except OSError as e:
        print("refused:", type(e).__name__, e)
"""


def _assert_no_connection(server: socket.socket) -> None:
    with pytest.raises(BlockingIOError):  # nothing is waiting in the accept queue
        server.accept()


@pytest.mark.parametrize(
    ("settings", "layer"),
    [
        ({}, None),  # every layer on
        ({"socket_guard": False}, "network namespace"),  # the kernel layer alone
        ({"namespaces": False, "sandbox_user": ""}, "socket guard"),  # the in-process layer alone
    ],
    ids=["all-layers", "netns-only", "guard-only"],
)
def test_no_network_to_a_local_server(settings, layer):
    server = _listening_server()
    try:
        result = PythonTool(PythonSandboxConfig(timeout_s=10, **settings)).run(
            CONNECT.format(port=server.getsockname()[1])
        )
        if layer and layer not in result.layers:
            pytest.skip(f"{layer} not available here (layers: {result.layers})")
        assert "CONNECTED" not in result.output
        assert result.output.count("refused:") == 2, result.output
        _assert_no_connection(server)
    finally:
        server.close()


@pytest.mark.skipif(
    not IS_ROOT, reason="without root the code runs as the caller and may write the caller's files"
)
def test_files_outside_the_work_dir_are_not_written_on_the_host(tool, tmp_path):
    """/tmp is the call's own tmpfs now (it was read-only, which broke multiprocessing)."""
    mine = tmp_path / "owned_by_test.txt"
    in_tmp = Path("/tmp") / f"reagent-sandbox-test-{uuid.uuid4().hex}"
    code = f"""
for path in [{str(mine)!r}, {str(in_tmp)!r}, "/etc/reagent-sandbox-test"]:
    try:
        open(path, "w").write("pwned")
        print("WROTE", path)
    except OSError as e:
        print("refused:", type(e).__name__)
open("inside.txt", "w").write("ok")
print(open("inside.txt").read())
"""
    result = tool.run(code)
    assert result.output.strip().endswith("ok"), result.output
    assert f"WROTE {mine}" not in result.output and "WROTE /etc" not in result.output
    assert (
        not mine.exists() and not in_tmp.exists() and not Path("/etc/reagent-sandbox-test").exists()
    )
    assert any(layer.startswith("user ") for layer in result.layers)


def test_parent_environment_is_not_visible(tool, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "secret-value-123")
    text = tool(
        code="import os\nprint(os.environ.get('OPENAI_API_KEY'))\nprint(sorted(os.environ))"
    )
    assert text.startswith("None") and "secret-value-123" not in text and "OPENAI" not in text


def test_work_dir_is_fresh_and_removed(tool):
    first = tool.run(
        "import os\nprint(os.getcwd())\nopen('state.txt', 'w').write('1')"
    ).output.strip()
    second = tool.run("import os\nprint(os.getcwd(), os.path.exists('state.txt'))").output.strip()
    assert first != second.split()[0] and second.endswith("False")
    assert not Path(first).exists()


def test_long_output_is_cut_keeping_both_ends(tool):
    text = tool(code="print('START' + 'x' * 10000 + 'END')")
    assert text.startswith("START") and text.endswith("END")
    assert "characters cut" in text and len(text) < 2100
    assert "[... 8," in text  # 10,009 printed (with newline), 2,000 kept


def test_flood_of_output_is_bounded(tool):
    result = tool.run(
        "import sys\nfor _ in range(2000):\n    sys.stdout.write('y' * 10000)\nprint('TAIL')"
    )
    assert result.exit_code == 0 and result.output.rstrip().endswith("TAIL")
    assert len(result.output) < 2100 and "characters cut" in result.output


def test_background_processes_die_with_the_call(tool):
    tag = uuid.uuid4().hex
    code = (
        "import subprocess, sys\n"
        f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)', '{tag}'], "
        "start_new_session=True)\nprint('spawned')"
    )
    result = tool.run(code)
    if "pid namespace" not in result.layers:
        pytest.skip(f"pid namespace not available here (layers: {result.layers})")
    time.sleep(0.2)
    survivors = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if tag.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                survivors.append(pid)
        except OSError:
            pass
    assert result.output.strip() == "spawned" and survivors == []


def test_cut_middle_counts_what_it_cut():
    assert cut_middle("short", 100) == "short"
    text = cut_middle("a" * 50 + "b" * 50, 20)
    assert text == "a" * 10 + "\n[... 80 characters cut ...]\n" + "b" * 10


def test_config_is_checked():
    with pytest.raises(ValueError, match="timeout_s"):
        PythonSandboxConfig(timeout_s=0)
    with pytest.raises(ValueError, match="memory_mb"):
        PythonSandboxConfig(memory_mb=16)
    if IS_ROOT:
        with pytest.raises(ValueError, match="sandbox_user"):
            PythonTool(PythonSandboxConfig(sandbox_user="no-such-user-xyz"))


@pytest.mark.skipif(not IS_ROOT, reason="switching user needs root")
def test_without_namespaces_the_user_switch_still_holds_or_says_why():
    """No mount namespace to expose an interpreter under /root: a clear error, never root."""
    result = PythonTool(PythonSandboxConfig(namespaces=False)).run("import os\nprint(os.getuid())")
    if result.exit_code == 126:
        assert "cannot read the Python installation" in result.output
    else:  # each call its own uid (was: always nobody, shared by every call)
        assert int(result.output.strip()) >= PythonSandboxConfig().uid_base, result.output
