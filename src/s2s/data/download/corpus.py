"""Fetching a dataset's files: from their URL, a local folder, or a mirror; verified; published at once.

Every downloaded file is checked against the sha256 in the data config before it is accepted;
a user's local files may go without (DVC hashes the copy in ``data/raw``).  Which files a dataset
needs and how they are read is :mod:`s2s.data.download.sources`.
"""

from __future__ import annotations

import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from s2s.common.config_guard import check_params_file
from s2s.common.io import InputError, atomic_path, sha256_file
from s2s.data.download.sources import CorpusConfig, Source

MIRROR_ENV = "S2S_MIRROR"


class ChecksumError(InputError):
    """A fetched file does not match the sha256 written in the config."""


class SourceUnreachable(InputError):
    """The corpus source (URL or mirror) cannot be read."""


def _is_url(location: str) -> bool:
    return location.startswith(("http://", "https://", "file://"))


def fetch_file(base: str, name: str, dest: Path, expected_sha256: str | None, timeout: float = 60.0) -> bool:
    """Fetch ``base/name`` to ``dest``, verified. Returns False when ``dest`` was already valid.

    Downloads go to ``dest.part`` first and resume from it (HTTP Range) after an interruption;
    only a file whose hash matches is renamed to ``dest``.  ``expected_sha256=None`` (a user's
    local file) skips the check and always copies afresh.
    """
    if expected_sha256 and dest.is_file() and sha256_file(dest) == expected_sha256:
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
    actual = sha256_file(part) if expected_sha256 else None
    if expected_sha256 and actual != expected_sha256:
        part.unlink(missing_ok=True)
        raise ChecksumError(f"{name}: checksum mismatch (from {base}): expected sha256 {expected_sha256}, got {actual}")
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


def _url_parent(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[0]


def source_base(source: Source, dataset_mirror: str | None, first: bool, files: Sequence[str] = ()) -> str:
    """Where to fetch ``source`` from: its own mirror, the dataset's, ``$S2S_MIRROR``, else its URL or path.

    ``data.sources.<name>.mirror`` is a folder or URL holding that source's files, used as is.
    A local ``path`` source is read where it is (mirrors are for downloads).
    ``data.mirror`` and ``$S2S_MIRROR`` serve every source of the dataset: a folder that holds one
    subfolder per source named by its ``mirror_name`` (``../shared/data`` holds ``multi30k/``,
    ``tatoeba-anki-deu-eng/``...), or a folder holding a source's files, whose siblings are then
    searched for the other sources (``S2S_MIRROR=../shared/data/multi30k`` also finds
    ``../shared/data/wmt22-generaltest-de-en``): one setting serves every dataset.  A URL mirror
    holds the dataset's first source; the other sources are looked up beside it.
    """
    if source.mirror:
        return _checked_base(source.mirror, f"{source.option}.mirror")
    if source.path is not None:  # a user's own files: no mirror stands in for them
        if not Path(source.path).expanduser().exists():
            raise InputError(f"{source.option}.path: {source.path} does not exist")
        return _checked_base(str(source.local_folder()), f"{source.option}.path")
    mirror, origin = dataset_mirror, "data.mirror"
    if not mirror:
        mirror, origin = os.environ.get(MIRROR_ENV) or None, MIRROR_ENV
    if not mirror:
        if not source.url:
            raise InputError(
                f"{source.option}: no url; point it at a copy with {source.option}.mirror, data.mirror or "
                f"{MIRROR_ENV} (a folder holding {source.mirror_name}/)"
            )
        return source.url.rstrip("/")
    name = source.mirror_name or source.name
    if _is_url(mirror):
        mirror = mirror.rstrip("/")
        return mirror if first or mirror.endswith("/" + name) else f"{_url_parent(mirror)}/{name}"
    base = Path(_checked_base(mirror, origin))
    sibling = base.parent / name
    for cand in (base / name, base, sibling):
        if cand.is_dir() and (
            cand != base or base.as_posix().endswith("/" + name) or any((base / f).is_file() for f in files)
        ):
            return str(cand)
    raise InputError(
        f"{source.option}: the mirror {base} (set by {origin}) holds neither its files nor a folder {name}/, "
        f"and {sibling} does not exist; set {source.option}.mirror"
    )


def _checked_base(location: str, origin: str) -> str:
    if _is_url(location):
        return location.rstrip("/")
    path = Path(location).expanduser()
    if not path.is_dir():
        raise InputError(f"mirror folder does not exist: {path} (set by {origin})")
    return str(path.resolve())


def download_dataset(ds: CorpusConfig, raw_dir: str | Path) -> dict[str, list[str]]:
    """Fetch every file the dataset reads into ``raw_dir/<source>/<file>``, verified, in one publish.

    Files are fetched into a staging folder beside ``raw_dir`` (kept across failures, so a rerun
    resumes), checked (sha256 where configured, aligned line counts), and only then published as
    ``raw_dir`` in one rename.  Returns the files fetched per source.
    """
    from s2s.data.download.sources import iter_part

    raw_dir = Path(raw_dir)
    staging = raw_dir.parent / f".{raw_dir.name}.partial"
    needed = ds.needed_files()
    for name, files in needed.items():
        source = ds.sources[name]
        for file in files:
            if file not in source.sha256 and source.path is None:
                raise InputError(f"{source.option}.sha256: no sha256 configured for {file} (required for a download)")
    origins = {}
    for i, (name, files) in enumerate(needed.items()):
        source = ds.sources[name]
        base = source_base(source, ds.mirror, i == 0, files)
        origins[str(staging / name)] = base
        for file in files:
            fetch_file(base, file, staging / name / file, source.sha256.get(file), ds.timeout_s)
    try:  # sides aligned, TSV fields well formed: fail here, not hours later
        for part in ds.parts():
            for _ in iter_part(staging, ds, part):
                pass
    except InputError as err:  # name the file the user knows, not its staged copy
        message = str(err)
        for staged, base in origins.items():
            message = message.replace(staged, base)
        raise InputError(message) from err
    with atomic_path(raw_dir, is_dir=True) as tmp:
        for name, files in needed.items():
            (tmp / name).mkdir(parents=True, exist_ok=True)
            for file in files:
                (tmp / name / file).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(staging / name / file, tmp / name / file)
        check_params_file()  # fetched for what params.yaml said at the start, or nothing is published
    shutil.rmtree(staging, ignore_errors=True)
    return needed
