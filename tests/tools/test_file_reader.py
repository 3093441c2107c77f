"""The file reader: confined to its root, text only, read in pieces."""

from __future__ import annotations

import os

import pytest

from reagent.tools.file_reader import FileReaderTool


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "task_files"
    (root / "data").mkdir(parents=True)
    (root / "notes.txt").write_text("Balance of cash: 1250\n")
    (root / "data" / "table.csv").write_text("account,balance\ncash,1250\nreceivables,730\n")
    (tmp_path / "secret.txt").write_text("TOP SECRET")
    return root


def test_reads_a_text_file(root):
    tool = FileReaderTool(root)
    assert tool(path="notes.txt") == "Balance of cash: 1250\n"
    assert tool(path="./data/table.csv").startswith("account,balance\ncash,1250")


def test_lists_a_folder(root):
    text = FileReaderTool(root)(path=".")
    assert "data/  (folder)" in text and "notes.txt  (22 bytes)" in text


@pytest.mark.parametrize("path", ["../secret.txt", "data/../../secret.txt", "data/../notes.txt"])
def test_refuses_dot_dot(root, path):
    assert "contains '..'" in FileReaderTool(root)(path=path)


def test_refuses_absolute_paths(root, tmp_path):
    tool = FileReaderTool(root)
    for path in [str(tmp_path / "secret.txt"), "/etc/passwd", "~/.bashrc"]:
        text = tool(path=path)
        assert text.startswith("Error:") and "absolute path" in text and "SECRET" not in text


def test_refuses_symlinks_that_leave_the_root(root, tmp_path):
    os.symlink(tmp_path / "secret.txt", root / "link.txt")
    os.symlink(tmp_path, root / "up")
    os.symlink(root / "notes.txt", root / "inside.txt")
    tool = FileReaderTool(root)
    assert "leads outside" in tool(path="link.txt")
    assert "leads outside" in tool(path="up/secret.txt")
    assert tool(path="inside.txt") == "Balance of cash: 1250\n"  # a link that stays inside is fine
    assert "link.txt" not in tool(path=".")  # and the listing does not show the way out


def test_refuses_binary_and_unknown_types(root):
    (root / "program.exe").write_bytes(b"MZ\x90\x00")
    (root / "fake.txt").write_bytes(b"text\x00\x01\x02 with nul bytes")
    (root / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    (root / "README").write_text("no extension")
    tool = FileReaderTool(root)
    assert "not a known text format" in tool(path="program.exe")
    assert "binary" in tool(path="fake.txt")
    assert "not UTF-8" in tool(path="latin1.txt")
    assert "not a known text format" in tool(path="README")
    assert "no such file" in tool(path="nothere.txt")


def test_long_files_come_in_pieces(root):
    (root / "big.log").write_text("".join(f"line {i:05d}\n" for i in range(1000)))  # 11,000 chars
    tool = FileReaderTool(root, max_chars=4000)
    first = tool(path="big.log")
    assert first.startswith("line 00000") and first.endswith(
        "[characters 0-4,000 of 11,000 shown; call again with offset=4000 to read on]"
    )
    last = tool(path="big.log", offset=8000)
    assert last.endswith("line 00999\n\n[characters 8,000-11,000 of 11,000 shown; end of file]")
    assert "past the end" in tool(path="big.log", offset=20000)
    assert tool(path="big.log", offset=-1).startswith("Error: offset")


def test_refuses_files_over_the_size_cap(root):
    (root / "huge.txt").write_text("x" * 5000)
    assert "more than the 1,000 bytes" in FileReaderTool(root, max_file_bytes=1000)(path="huge.txt")


def test_hard_link_to_an_outside_file_is_refused(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("the outside secret")
    os.link(secret, root / "notes.txt")
    out = FileReaderTool(root)("notes.txt")
    assert out.startswith("Error:") and "2 hard links" in out
    assert "outside secret" not in out


def test_symlink_loop_does_not_break_the_listing(tmp_path):
    (tmp_path / "a.txt").write_text("alpha")
    os.symlink("loop2", tmp_path / "loop1")
    os.symlink("loop1", tmp_path / "loop2")
    tool = FileReaderTool(tmp_path)
    listing = tool(".")
    assert "a.txt" in listing and not listing.startswith("Error")
    assert tool("loop1") == "Error: 'loop1' is a symlink loop"
    assert tool("a.txt") == "alpha"


@pytest.mark.parametrize("path", ["x" * 100_000, "/" + "x" * 100_000, "../" * 30_000, "a/" * 50_000])
def test_error_text_does_not_echo_a_huge_path(tmp_path, path):
    out = FileReaderTool(tmp_path)(path)
    assert out.startswith("Error:") and len(out) < 600
