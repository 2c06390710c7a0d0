"""download_dataset: mirrors (folder, env var, http), checksums, resume, and nothing half-published."""

import functools
import gzip
import hashlib
import http.server
import socket
import threading
import time
from pathlib import Path

import pytest

from s2s.common.io import InputError
from s2s.data.download.corpus import (
    MIRROR_ENV,
    ChecksumError,
    SourceUnreachable,
    download_dataset,
    fetch_file,
)
from s2s.data.download.sources import CorpusConfig, iter_part

SPLITS = ["train", "val", "test_2016_flickr"]
LANGS = ("en", "de")
UNUSED_SOURCE = "http://127.0.0.1:9/never-contacted"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_mirror(folder: Path, sizes=None) -> dict[str, str]:
    """Write ``<split>.<lang>.gz`` files into ``folder``; return file name -> sha256."""
    sizes = sizes or {"train": 12, "val": 4, "test_2016_flickr": 5}
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for split in SPLITS:
        for lang in LANGS:
            n = sizes[split] if isinstance(sizes[split], int) else sizes[split][lang]
            text = "".join(f"{lang} {split} sentence {i}\n" for i in range(n))
            data = gzip.compress(text.encode(), mtime=0)
            name = f"{split}.{lang}.gz"
            (folder / name).write_bytes(data)
            files[name] = _sha(data)
    return files


SOURCE = "m30k"


def _dataset(files, mirror=None, timeout=5.0, source=UNUSED_SOURCE) -> CorpusConfig:
    """A Multi30k-shaped dataset: one URL source whose files are listed with their sha256."""
    return CorpusConfig.from_config(
        {
            "name": "t",
            "src_lang": "en",
            "tgt_lang": "de",
            "mirror": mirror,
            "timeout_s": timeout,
            "sources": {SOURCE: {"url": source, "mirror_name": SOURCE, "sha256": files}},
            "train": {"pairs": f"{SOURCE}/train"},
            "valid": {"pairs": f"{SOURCE}/val"},
            "test_sets": {"test_2016_flickr": {"pairs": f"{SOURCE}/test_2016_flickr"}},
        }
    )


def _download(mirror, files, raw_dir, timeout=5.0, source=UNUSED_SOURCE):
    return download_dataset(_dataset(files, mirror, timeout, source), raw_dir)


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _QuietFolderHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files`` (name -> bytes) and honours ``Range: bytes=N-`` with a 206."""

    def do_GET(self):
        self.server.requests.append((self.path, self.headers.get("Range")))
        data = self.server.files.get(self.path.lstrip("/"))
        if data is None:
            self.send_error(404)
            return
        status, body = 200, data
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[len("bytes=") : -1])
            if start >= len(data):
                self.send_error(416)
                return
            status, body = 206, data[start:]
        self.send_response(status)
        if status == 206:
            self.send_header("Content-Range", f"bytes {len(data) - len(body)}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    """``serve(handler_class) -> (base_url, server)``; servers are shut down after the test."""
    servers = []

    def start(handler):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.requests = []
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _assert_raw_complete(raw_dir: Path, mirror: Path, files: dict[str, str]):
    assert sorted(p.name for p in raw_dir.iterdir()) == [SOURCE]
    assert sorted(p.name for p in (raw_dir / SOURCE).iterdir()) == sorted(files)
    for name in files:
        assert (raw_dir / SOURCE / name).read_bytes() == (mirror / name).read_bytes()


def _staging(raw_dir: Path) -> Path:
    return raw_dir.parent / f".{raw_dir.name}.partial" / SOURCE


# --- local folder mirror --------------------------------------------------------------------------


def test_download_from_folder_mirror(tmp_path):
    mirror = tmp_path / "mirror"
    files = make_mirror(mirror)
    raw = tmp_path / "data" / "raw"
    fetched = _download(str(mirror), files, raw)
    assert sorted(fetched[SOURCE]) == sorted(files)
    _assert_raw_complete(raw, mirror, files)
    assert not _staging(raw).exists()
    assert sorted(p.name for p in raw.parent.iterdir()) == ["raw"]  # no temp folder left
    ds = _dataset(files)
    rows = list(iter_part(raw, ds, ds.valid))
    assert rows[0] == ("en val sentence 0", ("de val sentence 0",)) and rows[3][1] == ("de val sentence 3",)


def test_checksum_mismatch(tmp_path):
    mirror = tmp_path / "mirror"
    files = make_mirror(mirror)
    bad = "0" * 64
    files["val.de.gz"] = bad
    actual = _sha((mirror / "val.de.gz").read_bytes())
    raw = tmp_path / "raw"
    with pytest.raises(ChecksumError) as info:
        _download(str(mirror), files, raw)
    msg = str(info.value)
    assert "val.de.gz" in msg and bad in msg and actual in msg
    assert isinstance(info.value, InputError)
    assert not raw.exists()
    # the rejected file is not kept; the files verified before it are kept for the rerun
    staged = sorted(p.name for p in _staging(raw).iterdir())
    assert staged == ["train.de.gz", "train.en.gz", "val.en.gz"]


def test_rerun_after_failure_reuses_verified_files(tmp_path):
    mirror = tmp_path / "mirror"
    files = make_mirror(mirror)
    good = dict(files)
    files["test_2016_flickr.en.gz"] = "f" * 64
    raw = tmp_path / "raw"
    with pytest.raises(ChecksumError):
        _download(str(mirror), files, raw)
    staged = _staging(raw) / "train.en.gz"
    assert staged.is_file()
    # a staged file already valid is not fetched again
    assert fetch_file(str(mirror), "train.en.gz", staged, good["train.en.gz"]) is False
    _download(str(mirror), good, raw)
    _assert_raw_complete(raw, mirror, good)
    assert not _staging(raw).exists()


def test_mirror_folder_does_not_exist(tmp_path):
    missing = tmp_path / "no" / "such" / "mirror"
    raw = tmp_path / "raw"
    with pytest.raises(InputError) as info:
        _download(str(missing), make_mirror(tmp_path / "unused"), raw)
    msg = str(info.value)
    assert str(missing) in msg and "data.mirror" in msg
    assert not raw.exists() and not _staging(raw).exists()


def test_file_missing_in_mirror(tmp_path):
    mirror = tmp_path / "mirror"
    files = make_mirror(mirror)
    (mirror / "test_2016_flickr.de.gz").unlink()
    raw = tmp_path / "raw"
    with pytest.raises(InputError) as info:
        _download(str(mirror), files, raw)
    msg = str(info.value)
    assert str(mirror / "test_2016_flickr.de.gz") in msg and "not found" in msg
    assert not raw.exists()


def test_no_checksum_configured(tmp_path):
    mirror = tmp_path / "mirror"
    files = make_mirror(mirror)
    del files["val.en.gz"]
    raw = tmp_path / "raw"
    with pytest.raises(InputError, match=r"data\.valid: source 'm30k' has no file val\.en\[\.gz\].*sha256"):
        _download(str(mirror), files, raw)
    assert not raw.exists()


def test_sides_with_different_line_counts(tmp_path):
    mirror = tmp_path / "mirror"
    files = make_mirror(mirror, sizes={"train": 12, "val": {"en": 4, "de": 7}, "test_2016_flickr": 5})
    raw = tmp_path / "raw"
    with pytest.raises(InputError) as info:
        _download(str(mirror), files, raw)
    msg = str(info.value)
    assert "val.en.gz has 4 lines" in msg and "val.de.gz has 7" in msg
    assert not raw.exists()


def test_existing_raw_dir_replaced_on_success_only(tmp_path):
    mirror = tmp_path / "mirror"
    files = make_mirror(mirror)
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "stale.txt").write_text("old", encoding="utf-8")
    bad = dict(files, **{"train.en.gz": "1" * 64})
    with pytest.raises(ChecksumError):
        _download(str(mirror), bad, raw)
    assert sorted(p.name for p in raw.iterdir()) == ["stale.txt"]
    _download(str(mirror), files, raw)
    _assert_raw_complete(raw, mirror, files)


def test_env_var_mirror(tmp_path, monkeypatch):
    mirror = tmp_path / "env-mirror"
    files = make_mirror(mirror)
    raw = tmp_path / "raw"
    monkeypatch.setenv(MIRROR_ENV, str(mirror))
    _download(None, files, raw)
    _assert_raw_complete(raw, mirror, files)


def test_env_var_mirror_missing_names_variable(tmp_path, monkeypatch):
    missing = tmp_path / "gone"
    monkeypatch.setenv(MIRROR_ENV, str(missing))
    with pytest.raises(InputError) as info:
        _download(None, make_mirror(tmp_path / "unused"), tmp_path / "raw")
    assert str(missing) in str(info.value) and MIRROR_ENV in str(info.value)


def test_option_wins_over_env_var(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    files = make_mirror(mirror)
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path / "gone"))
    _download(str(mirror), files, tmp_path / "raw")
    _assert_raw_complete(tmp_path / "raw", mirror, files)


# --- http mirror ----------------------------------------------------------------------------------


def test_download_from_http_mirror(tmp_path, serve):
    mirror = tmp_path / "mirror"
    files = make_mirror(mirror)
    base, _ = serve(functools.partial(_QuietFolderHandler, directory=str(mirror)))
    raw = tmp_path / "raw"
    _download(base + "/", files, raw)
    _assert_raw_complete(raw, mirror, files)
    assert not _staging(raw).exists()


def test_http_checksum_mismatch(tmp_path, serve):
    mirror = tmp_path / "mirror"
    files = make_mirror(mirror)
    files["train.de.gz"] = "a" * 64
    base, _ = serve(functools.partial(_QuietFolderHandler, directory=str(mirror)))
    raw = tmp_path / "raw"
    with pytest.raises(ChecksumError, match="train.de.gz"):
        _download(base, files, raw)
    assert not raw.exists()
    assert not (_staging(raw) / "train.de.gz.part").exists()


def test_http_missing_file(tmp_path, serve):
    mirror = tmp_path / "mirror"
    files = make_mirror(mirror)
    (mirror / "val.en.gz").unlink()
    base, _ = serve(functools.partial(_QuietFolderHandler, directory=str(mirror)))
    raw = tmp_path / "raw"
    with pytest.raises(SourceUnreachable) as info:
        _download(base, files, raw)
    assert f"{base}/val.en.gz" in str(info.value) and "404" in str(info.value)
    assert not raw.exists()


def test_unreachable_url_fails_fast_with_mirror_hint(tmp_path, monkeypatch):
    monkeypatch.delenv(MIRROR_ENV, raising=False)  # CI sets it; here the source URL itself must be tried
    url = f"http://127.0.0.1:{_closed_port()}"
    raw = tmp_path / "raw"
    start = time.monotonic()
    with pytest.raises(SourceUnreachable) as info:
        _download(None, {f"{s}.{lang}.gz": "0" * 64 for s in SPLITS for lang in LANGS}, raw, 2.0, url)
    assert time.monotonic() - start < 10
    msg = str(info.value)
    assert url in msg and "unreachable" in msg
    assert "data.mirror" in msg and MIRROR_ENV in msg
    assert not raw.exists()


def test_resume_partial_download_with_range(tmp_path, serve):
    mirror = tmp_path / "mirror"
    files = make_mirror(mirror, sizes={"train": 400, "val": 4, "test_2016_flickr": 5})
    payload = {name: (mirror / name).read_bytes() for name in files}
    base, server = serve(_RangeHandler)
    server.files = payload
    raw = tmp_path / "raw"
    staging = _staging(raw)
    staging.mkdir(parents=True)
    full = payload["train.en.gz"]
    cut = len(full) // 3
    assert cut > 0
    (staging / "train.en.gz.part").write_bytes(full[:cut])

    _download(base, files, raw)
    _assert_raw_complete(raw, mirror, files)
    ranges = dict(server.requests)
    assert ranges["/train.en.gz"] == f"bytes={cut}-"
    assert ranges["/train.de.gz"] is None  # nothing to resume: a plain request
    assert not staging.exists()


def test_resume_ignored_by_server_restarts_cleanly(tmp_path, serve):
    """A server that ignores Range answers 200 with the whole file: the .part must be overwritten."""
    mirror = tmp_path / "mirror"
    files = make_mirror(mirror)
    base, server = serve(functools.partial(_QuietFolderHandler, directory=str(mirror)))
    raw = tmp_path / "raw"
    staging = _staging(raw)
    staging.mkdir(parents=True)
    full = (mirror / "train.en.gz").read_bytes()
    (staging / "train.en.gz.part").write_bytes(full[:10])
    _download(base, files, raw)
    _assert_raw_complete(raw, mirror, files)


def test_a_params_file_changed_while_downloading_publishes_nothing(tmp_path, monkeypatch):
    """Issue 35, item 5: a second `dvc exp run` rewrote params.yaml under this stage."""
    from s2s.common import config_guard
    from s2s.common.io import InputError

    params = tmp_path / "params.yaml"
    params.write_text("preprocess: {spm: {vocab_size: 500}}\n")
    monkeypatch.setattr(config_guard, "_started_with", (params, "0" * 64))  # what it held at the start
    mirror = tmp_path / "mirror"
    files = make_mirror(mirror)
    raw = tmp_path / "raw"
    with pytest.raises(InputError, match="params.yaml changed while this stage ran"):
        _download(str(mirror), files, raw)
    assert not raw.exists()
