"""atomic_path and read_lines: nothing half-written, and input errors name the file and line."""

import gzip
import os

import pytest

from s2s.common.io import InputError, atomic_path, read_lines, sha256_file, write_json_atomic


class Boom(RuntimeError):
    pass


def _siblings(folder):
    return sorted(os.listdir(folder))


# --- atomic_path: files ---------------------------------------------------------------------------


def test_atomic_file_written_on_success(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_path(target) as tmp:
        assert tmp != target and tmp.parent == target.parent
        tmp.write_text("hello", encoding="utf-8")
        assert not target.exists()  # not visible before the body finishes
    assert target.read_text(encoding="utf-8") == "hello"
    assert _siblings(target.parent) == ["out.txt"]


def test_atomic_file_failure_leaves_no_target_and_no_temp(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(Boom):
        with atomic_path(target) as tmp:
            tmp.write_text("half", encoding="utf-8")
            raise Boom("killed")
    assert not target.exists()
    assert _siblings(tmp_path) == []


def test_atomic_file_replaces_existing_only_on_success(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old", encoding="utf-8")
    with pytest.raises(Boom):
        with atomic_path(target) as tmp:
            tmp.write_text("new but broken", encoding="utf-8")
            raise Boom
    assert target.read_text(encoding="utf-8") == "old"
    assert _siblings(tmp_path) == ["out.txt"]

    with atomic_path(target) as tmp:
        tmp.write_text("new", encoding="utf-8")
    assert target.read_text(encoding="utf-8") == "new"
    assert _siblings(tmp_path) == ["out.txt"]


def test_atomic_file_keyboard_interrupt_cleans_up(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_text("{", encoding="utf-8")
            raise KeyboardInterrupt
    assert _siblings(tmp_path) == []


def test_write_json_atomic(tmp_path):
    target = tmp_path / "r.json"
    write_json_atomic(target, {"b": 1, "a": "é"})
    assert target.read_text(encoding="utf-8") == '{\n  "a": "é",\n  "b": 1\n}\n'


# --- atomic_path: folders -------------------------------------------------------------------------


def test_atomic_dir_written_on_success(tmp_path):
    target = tmp_path / "prepared"
    with atomic_path(target, is_dir=True) as tmp:
        assert tmp.is_dir()
        (tmp / "a.txt").write_text("a", encoding="utf-8")
        assert not target.exists()
    assert (target / "a.txt").read_text(encoding="utf-8") == "a"
    assert _siblings(tmp_path) == ["prepared"]


def test_atomic_dir_failure_leaves_no_target_and_no_temp(tmp_path):
    target = tmp_path / "prepared"
    with pytest.raises(Boom):
        with atomic_path(target, is_dir=True) as tmp:
            (tmp / "a.txt").write_text("a", encoding="utf-8")
            (tmp / "nested").mkdir()
            (tmp / "nested" / "b.txt").write_text("b", encoding="utf-8")
            raise Boom
    assert not target.exists()
    assert _siblings(tmp_path) == []


def test_atomic_dir_replaces_existing_only_on_success(tmp_path):
    target = tmp_path / "prepared"
    target.mkdir()
    (target / "old.txt").write_text("old", encoding="utf-8")
    with pytest.raises(Boom):
        with atomic_path(target, is_dir=True) as tmp:
            (tmp / "new.txt").write_text("new", encoding="utf-8")
            raise Boom
    assert _siblings(target) == ["old.txt"]
    assert _siblings(tmp_path) == ["prepared"]

    with atomic_path(target, is_dir=True) as tmp:
        (tmp / "new.txt").write_text("new", encoding="utf-8")
    assert _siblings(target) == ["new.txt"]  # the old content is gone, not merged
    assert _siblings(tmp_path) == ["prepared"]


# --- read_lines -----------------------------------------------------------------------------------


def test_read_lines_plain_and_gzip(tmp_path):
    plain = tmp_path / "a.txt"
    plain.write_bytes(b"ein Hund\nzwei Katzen\n")
    gz = tmp_path / "a.txt.gz"
    gz.write_bytes(gzip.compress(b"ein Hund\nzwei Katzen"))  # no final newline
    assert read_lines(plain) == ["ein Hund", "zwei Katzen"]
    assert read_lines(gz) == ["ein Hund", "zwei Katzen"]


def test_read_lines_keeps_inner_empty_lines(tmp_path):
    f = tmp_path / "a.txt"
    f.write_bytes(b"a\n\nb\n")
    assert read_lines(f) == ["a", "", "b"]


def test_read_lines_strips_crlf(tmp_path):
    f = tmp_path / "crlf.gz"
    f.write_bytes(gzip.compress(b"a dog\r\ntwo cats\r\n"))
    lines = read_lines(f)
    assert lines == ["a dog", "two cats"]
    assert not any("\r" in line for line in lines)


def test_read_lines_missing_file(tmp_path):
    missing = tmp_path / "nope.en.gz"
    with pytest.raises(InputError, match="file not found") as info:
        read_lines(missing)
    assert str(missing) in str(info.value)


def test_read_lines_directory_is_not_a_file(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        read_lines(tmp_path)


@pytest.mark.parametrize("content", [b"", gzip.compress(b"")], ids=["plain", "gzip"])
def test_read_lines_empty_file(tmp_path, content):
    f = tmp_path / ("empty.gz" if content else "empty.txt")
    f.write_bytes(content)
    with pytest.raises(InputError, match="file is empty") as info:
        read_lines(f)
    assert str(f) in str(info.value)


def test_read_lines_gz_that_is_not_gzip(tmp_path):
    f = tmp_path / "train.en.gz"
    f.write_bytes(b"plain text, not gzip\n")
    with pytest.raises(InputError, match="not a valid gzip file") as info:
        read_lines(f)
    assert str(f) in str(info.value)


def test_read_lines_truncated_gzip(tmp_path):
    f = tmp_path / "train.en.gz"
    data = gzip.compress(("a line of text\n" * 200).encode())
    f.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="not a valid gzip file") as info:
        read_lines(f)
    assert str(f) in str(info.value)


@pytest.mark.parametrize("suffix", [".txt", ".gz"])
def test_read_lines_invalid_utf8_names_file_and_line(tmp_path, suffix):
    raw = "good line\nsecond ä\n".encode() + b"bad \xff\xfe byte\nlast\n"
    f = tmp_path / f"val.de{suffix}"
    f.write_bytes(gzip.compress(raw) if suffix == ".gz" else raw)
    with pytest.raises(InputError, match="invalid UTF-8") as info:
        read_lines(f)
    msg = str(info.value)
    assert str(f) in msg
    assert "line 3" in msg


def test_sha256_file(tmp_path):
    f = tmp_path / "x"
    f.write_bytes(b"abc")
    assert sha256_file(f) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
