"""Fetching and reading the parallel corpus.

A corpus is a set of files ``<split>.<lang>.gz`` under a base location: the public source by
default, or a mirror (a local folder or an http(s) URL holding the same file names).  Every file
is checked against the sha256 in the config before it is accepted.
"""

from __future__ import annotations

import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from s2s.io import InputError, atomic_path, read_lines, sha256_file

MIRROR_ENV = "S2S_MIRROR"


class ChecksumError(InputError):
    """A fetched file does not match the sha256 written in the config."""


class SourceUnreachable(InputError):
    """The corpus source (URL or mirror) cannot be read."""


def resolve_base(source_url: str, mirror: str | None) -> str:
    """The base location to fetch from: the ``mirror`` option, else ``$S2S_MIRROR``, else the source."""
    chosen = mirror or os.environ.get(MIRROR_ENV) or source_url
    if not _is_url(chosen):
        path = Path(chosen).expanduser()
        if not path.is_dir():
            origin = "data.mirror" if mirror else MIRROR_ENV
            raise InputError(f"mirror folder does not exist: {path} (set by {origin})")
        return str(path.resolve())
    return chosen.rstrip("/")


def _is_url(location: str) -> bool:
    return location.startswith(("http://", "https://", "file://"))


def fetch_file(base: str, name: str, dest: Path, expected_sha256: str, timeout: float = 60.0) -> bool:
    """Fetch ``base/name`` to ``dest``, verified. Returns False when ``dest`` was already valid.

    Downloads go to ``dest.part`` first and resume from it (HTTP Range) after an interruption;
    only a file whose hash matches is renamed to ``dest``.
    """
    if dest.is_file() and sha256_file(dest) == expected_sha256:
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    if _is_url(base):
        _download(f"{base}/{name}", part, timeout)
    else:
        src = Path(base) / name
        if not src.is_file():
            raise InputError(f"{src}: file not found in the mirror folder {base}")
        shutil.copyfile(src, part)
    actual = sha256_file(part)
    if actual != expected_sha256:
        part.unlink(missing_ok=True)
        raise ChecksumError(
            f"{name}: checksum mismatch (from {base}): expected sha256 {expected_sha256}, got {actual}"
        )
    os.replace(part, dest)
    return True


def _download(url: str, part: Path, timeout: float) -> None:
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "seq2seq-pipeline"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            resumed = offset and response.status == 206
            with open(part, "ab" if resumed else "wb") as fh:
                shutil.copyfileobj(response, fh, length=1 << 20)
    except urllib.error.HTTPError as err:
        if err.code == 416:  # the .part is already complete
            return
        raise SourceUnreachable(f"{url}: HTTP {err.code} {err.reason}") from err
    except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
        raise SourceUnreachable(
            f"{url}: unreachable ({getattr(err, 'reason', err)}). Offline? Point the download at a local copy "
            f"with data.mirror=/path/to/folder or the environment variable {MIRROR_ENV}."
        ) from err


@dataclass(frozen=True)
class SplitFiles:
    """The two sides of one split of a parallel corpus."""

    split: str
    src: Path
    tgt: Path


def split_files(raw_dir: str | Path, split_name: str, src_lang: str, tgt_lang: str) -> SplitFiles:
    raw_dir = Path(raw_dir)
    return SplitFiles(split_name, raw_dir / f"{split_name}.{src_lang}.gz", raw_dir / f"{split_name}.{tgt_lang}.gz")


def read_parallel(files: SplitFiles) -> tuple[list[str], list[str]]:
    """Both sides of a split; fails with both line counts when they differ."""
    src, tgt = read_lines(files.src), read_lines(files.tgt)
    if len(src) != len(tgt):
        raise InputError(
            f"split '{files.split}': {files.src} has {len(src)} lines but {files.tgt} has {len(tgt)}"
        )
    return src, tgt


def download_corpus(
    source_url: str,
    mirror: str | None,
    files: Mapping[str, str],
    raw_dir: str | Path,
    splits: Sequence[str],
    langs: Sequence[str],
    timeout: float = 60.0,
) -> dict[str, int]:
    """Fetch every ``<split>.<lang>.gz`` into ``raw_dir`` and check the sides align.

    Files are fetched into a staging folder beside ``raw_dir`` (kept across failures, so a rerun
    resumes), checked, and only then published as ``raw_dir`` in one rename.
    ``files`` maps file name to sha256. Returns the number of pairs per split.
    """
    base = resolve_base(source_url, mirror)
    raw_dir = Path(raw_dir)
    staging = raw_dir.parent / f".{raw_dir.name}.partial"
    names = []
    for split in splits:
        for lang in langs:
            name = f"{split}.{lang}.gz"
            if name not in files:
                raise InputError(f"data.files: no sha256 configured for {name}")
            fetch_file(base, name, staging / name, files[name], timeout)
            names.append(name)
    counts = {}
    for split in splits:
        src, _ = read_parallel(split_files(staging, split, langs[0], langs[1]))
        counts[split] = len(src)
    with atomic_path(raw_dir, is_dir=True) as tmp:
        for name in names:
            shutil.copyfile(staging / name, tmp / name)
    shutil.rmtree(staging, ignore_errors=True)
    return counts
