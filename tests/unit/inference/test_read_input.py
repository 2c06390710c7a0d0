"""translate's input is bounded before it is read whole: long lines cut, binary refused, totals capped."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from s2s.common.io import InputError
from s2s.inference import translator
from s2s.inference.translator import BYTES_PER_PIECE, read_input


class LazyLine(io.RawIOBase):
    """A stream of ``size`` bytes of 'a' then '\\n' and a short line, produced on demand; records
    the largest single read (what read_input ever holds of the long line)."""

    def __init__(self, size: int) -> None:
        self.left, self.tail, self.largest = size, b"\nshort\n", 0

    def readline(self, limit: int = -1) -> bytes:
        assert limit > 0, "an unbounded readline"
        self.largest = max(self.largest, limit)
        if self.left:
            n = min(limit, self.left)
            self.left -= n
            return b"a" * n
        line, _, self.tail = self.tail.partition(b"\n")
        return line + b"\n" if line or self.tail else b""


def test_a_50_mb_line_is_cut_past_the_piece_cap_and_never_held_whole() -> None:
    stream = LazyLine(50 * 1024 * 1024)
    lines = read_input("-", stream, max_src_pieces=10)
    # one piece more than translated: the translator's cut (and its one warning) still applies
    assert lines == ["a" * (11 * BYTES_PER_PIECE), "short"]
    assert stream.largest <= 1 << 16


def test_binary_input_is_refused_at_the_first_chunk() -> None:
    with pytest.raises(InputError, match=r"/dev/zero, line 1: contains a NUL byte"):
        read_input("/dev/zero", max_src_pieces=256)
    with pytest.raises(InputError, match="NUL byte|invalid UTF-8"):
        read_input("/dev/urandom", max_src_pieces=256)


def test_more_than_the_total_cap_is_refused(monkeypatch) -> None:
    monkeypatch.setattr(translator, "MAX_INPUT_BYTES", 1000)
    with pytest.raises(InputError, match="translate.input=-: more than"):
        read_input("-", io.BytesIO(b"one line of text\n" * 100), max_src_pieces=256)
    with pytest.raises(InputError, match="more than"):  # an endless line counts what is skipped
        read_input("-", LazyLine(10**12), max_src_pieces=1)


def test_ordinary_input_reads_as_before(tmp_path: Path) -> None:
    path = tmp_path / "in.txt"
    path.write_bytes("Ein Hund läuft.\r\n\nzwei\rdrei\n".encode())
    assert read_input(str(path)) == ["Ein Hund läuft.", "", "zwei drei"]  # a lone CR is no line end


@pytest.mark.parametrize("cut", range(1, 8))
def test_a_cut_never_splits_a_character(cut: int) -> None:
    text = "äß€𝄞x"  # 2, 2, 3, 4, 1 bytes
    data = text.encode()
    kept = data[: translator._char_boundary(data[:cut])]
    assert text.startswith(kept.decode("utf-8"))  # whole characters only, as many as fit
    assert len(data[:cut]) - len(kept) < 4
