"""A dataset as its YAML file (``conf/data/<name>.yaml``) describes it: sources, parts, test sets.

A *source* is a place files come from: a URL (every file needs a sha256 in the config) or a local
folder or file of the user's (checksums optional: DVC's own hashes version the copy in
``data/raw``).  The download stage copies each referenced file to ``data/raw/<source>/<file>``.

A *part* is a set of parallel text, referenced as ``<source>/<name>``:

- ``{pairs: multi30k/train}``: one file per language, ``train.<lang>`` or ``train.<lang>.gz``;
- ``{tsv: mine/corpus.tsv.gz, columns: {en: 0, de: 1}}``: one pair per line, columns chosen by language;
- ``{src: wmt22/x.src.en, refs: [wmt22/x.ref.A.de, wmt22/x.ref.B.de]}``: a source file and one or
  more reference files (a test set with several references).

A part may name official tokenized references, ``tok_refs: multi30k_tok/test.lc.norm.tok.{lang}``,
for the literature-comparable score.  Reading is streamed line by line, so a large training file
never has to fit in memory.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from s2s.common.config_dict import plain
from s2s.common.io import InputError

SHA256_LEN = 64


@dataclass(frozen=True)
class Source:
    """Where a set of files comes from: a URL (checksummed) or a local folder or file."""

    name: str
    url: str | None = None
    path: str | None = None
    mirror_name: str | None = None
    mirror: str | None = None
    sha256: Mapping[str, str] = field(default_factory=dict)

    @property
    def option(self) -> str:
        return f"data.sources.{self.name}"

    def has_file(self, name: str) -> bool:
        """Whether the source offers ``name`` (listed with a checksum, or present in the local folder)."""
        if name in self.sha256:
            return True
        if self.path is not None:
            base = Path(self.path).expanduser()
            return (base.name == name and base.is_file()) or (base / name).is_file()
        return False

    def local_folder(self) -> Path | None:
        """The folder of a local source (a local file's own folder)."""
        if self.path is None:
            return None
        base = Path(self.path).expanduser()
        return base.parent if base.is_file() else base


@dataclass(frozen=True)
class Part:
    """A set of parallel text: ``kind`` pairs | tsv | text; ``ref`` is ``<source>/<name>``."""

    kind: str
    ref: str
    option: str
    columns: Mapping[str, int] | None = None
    refs: tuple[str, ...] = ()
    tok_refs: str | None = None

    @property
    def source(self) -> str:
        return self.ref.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.ref.split("/", 1)[1]


@dataclass(frozen=True)
class SplitSpec:
    """A seeded train/valid/test split of one part, for a corpus without an official split."""

    part: Part
    seed: int
    valid: int
    test: int
    test_name: str = "test"


@dataclass(frozen=True)
class CorpusConfig:
    name: str
    src_lang: str
    tgt_lang: str
    sources: Mapping[str, Source]
    train: Part | None
    valid: Part | None
    test_sets: Mapping[str, Part]
    primary_test: str
    split: SplitSpec | None = None
    mirror: str | None = None
    timeout_s: float = 60.0

    @property
    def langs(self) -> tuple[str, str]:
        return self.src_lang, self.tgt_lang

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> CorpusConfig:
        """Validate the ``data`` config group; every problem names its option."""
        cfg = plain(cfg)
        for key in ("name", "src_lang", "tgt_lang", "sources"):
            if not cfg.get(key):
                raise InputError(f"data.{key} is required")
        if cfg["src_lang"] == cfg["tgt_lang"]:
            raise InputError(f"data.src_lang and data.tgt_lang are both {cfg['src_lang']!r}")
        sources = {name: _source(name, spec) for name, spec in cfg["sources"].items()}
        split = None
        if cfg.get("split"):
            s = cfg["split"]
            part = _part("data.split", s, sources)
            for key in ("valid", "test"):
                if not isinstance(s.get(key), int) or s[key] < 1:
                    raise InputError(f"data.split.{key}={s.get(key)!r}: must be a number of pairs >= 1")
            split = SplitSpec(part, int(s.get("seed", 1)), s["valid"], s["test"], s.get("test_name", "test"))
            if cfg.get("train") or cfg.get("valid"):
                raise InputError("data.split makes train/valid/test itself: remove data.train and data.valid")
        elif not cfg.get("train") or not cfg.get("valid"):
            raise InputError("data.train and data.valid are required (or data.split for a corpus without a split)")
        train = _part("data.train", cfg["train"], sources) if cfg.get("train") else None
        valid = _part("data.valid", cfg["valid"], sources) if cfg.get("valid") else None
        tests = {
            name: _part(f"data.test_sets.{name}", spec, sources)
            for name, spec in (cfg.get("test_sets") or {}).items()
            if spec  # a recipe removes an inherited test set by setting it to null
        }
        if split is not None:
            if split.test_name in tests:
                raise InputError(f"data.test_sets.{split.test_name}: the name is taken by data.split.test_name")
            tests = {split.test_name: split.part, **tests}
        if not tests:
            raise InputError("data.test_sets: at least one test set is required")
        primary = cfg.get("primary_test") or next(iter(tests))
        if primary not in tests:
            raise InputError(f"data.primary_test={primary!r}: not among the test sets ({', '.join(tests)})")
        return cls(
            name=cfg["name"],
            src_lang=cfg["src_lang"],
            tgt_lang=cfg["tgt_lang"],
            sources=sources,
            train=train,
            valid=valid,
            test_sets=tests,
            primary_test=primary,
            split=split,
            mirror=cfg.get("mirror"),
            timeout_s=float(cfg.get("timeout_s") or 60),
        )

    def test_set_names(self) -> list[str]:
        """The primary test set first, then the others in config order."""
        return [self.primary_test, *(n for n in self.test_sets if n != self.primary_test)]

    def parts(self) -> list[Part]:
        own = [p for p in (self.train, self.valid) if p is not None]
        if self.split is not None:
            own.append(self.split.part)
        return own + [p for n, p in self.test_sets.items() if self.split is None or n != self.split.test_name]

    def files_of(self, part: Part) -> list[str]:
        """The ``<source>/<file>`` names a part reads (tokenized references included)."""
        src = self.sources[part.source]
        if part.kind == "pairs":
            names = [pair_file(src, part, lang) for lang in self.langs]
        elif part.kind == "tsv":
            names = [part.ref]
        else:
            names = [part.ref, *part.refs]
        if part.tok_refs:
            tok_src = self.sources[part.tok_refs.split("/", 1)[0]]
            for lang in (self.tgt_lang, self.src_lang):
                ref = part.tok_refs.format(lang=lang)
                if tok_src.has_file(ref.split("/", 1)[1]):
                    names.append(ref)
                elif lang == self.tgt_lang:
                    raise InputError(f"{part.option}.tok_refs: {tok_src.option} has no file {ref.split('/', 1)[1]}")
        return names

    def needed_files(self) -> dict[str, list[str]]:
        """Source name -> file names to fetch, in config order, without repeats."""
        out: dict[str, list[str]] = {}
        for part in self.parts():
            for ref in self.files_of(part):
                source, name = ref.split("/", 1)
                names = out.setdefault(source, [])
                if name not in names:
                    names.append(name)
        return out


def pair_file(source: Source, part: Part, lang: str) -> str:
    """``<source>/<split>.<lang>[.gz]`` of a pairs part; a language the source lacks is an error."""
    for name in (f"{part.name}.{lang}.gz", f"{part.name}.{lang}"):
        if source.has_file(name):
            return f"{source.name}/{name}"
    offered = sorted(
        {n.rsplit(".gz", 1)[0].rsplit(".", 1)[-1] for n in _offered(source) if n.startswith(part.name + ".")}
    )
    hint = "" if source.path is not None else f"; a file to download needs its sha256 in {source.option}.sha256"
    raise InputError(
        f"{part.option}: source {source.name!r} has no file {part.name}.{lang}[.gz] "
        f"(language {lang!r} not in the files; languages offered: {', '.join(offered) or 'none'}{hint})"
    )


def _offered(source: Source) -> list[str]:
    names = list(source.sha256)
    folder = source.local_folder()
    if folder is not None and folder.is_dir():
        names += [p.name for p in folder.iterdir()]
    return names


def _source(name: str, spec: Mapping[str, Any]) -> Source:
    option = f"data.sources.{name}"
    if "/" in name:
        raise InputError(f"{option}: a source name cannot contain '/'")
    url, path = spec.get("url"), spec.get("path")
    if url and path:
        raise InputError(f"{option}: give either url or path, not both")
    sha = dict(spec.get("sha256") or {})
    for file, digest in sha.items():
        if not isinstance(digest, str) or len(digest) != SHA256_LEN:
            raise InputError(f"{option}.sha256.{file}: expected a 64-digit sha256, got {digest!r}")
    if path is None and not spec.get("mirror_name") and not url:
        raise InputError(f"{option}: needs a url, a local path or a mirror_name")
    return Source(name, url, path, spec.get("mirror_name") or name, spec.get("mirror"), sha)


def _part(option: str, spec: Mapping[str, Any], sources: Mapping[str, Source]) -> Part:
    if not isinstance(spec, Mapping):
        raise InputError(f"{option}: expected a mapping such as {{pairs: <source>/<split>}}, got {spec!r}")
    kinds = [k for k in ("pairs", "tsv", "src") if spec.get(k)]
    if len(kinds) != 1:
        raise InputError(f"{option}: give exactly one of pairs, tsv or src (got {', '.join(kinds) or 'none'})")
    kind = kinds[0]
    ref = str(spec[kind])
    refs = tuple(str(r) for r in spec.get("refs") or ())
    if kind == "src" and not refs:
        raise InputError(f"{option}.refs: a src part needs at least one reference file")
    for r in (ref, *refs):
        source = r.split("/", 1)[0]
        if "/" not in r or source not in sources:
            raise InputError(
                f"{option}: {r!r} must be <source>/<file> with a source of data.sources ({', '.join(sources)})"
            )
    tok = spec.get("tok_refs")
    if tok and tok.split("/", 1)[0] not in sources:
        raise InputError(f"{option}.tok_refs: {tok!r} must be <source>/<file> with a source of data.sources")
    columns = spec.get("columns")
    if kind == "tsv":
        if not columns:
            raise InputError(f"{option}.columns: a TSV part needs the column of each language, e.g. {{en: 0, de: 1}}")
        columns = {str(k): int(v) for k, v in columns.items()}
    return Part("text" if kind == "src" else kind, ref, option, columns, refs, tok)


# --- reading -------------------------------------------------------------------------------------


def iter_lines(path: str | os.PathLike[str]) -> Iterator[str]:
    """Stream a UTF-8 text file (gzip if it ends in ``.gz``) line by line, newline stripped.

    Invalid UTF-8 fails naming the file and line: a skipped line would misalign a parallel corpus.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        number = 0
        try:
            for number, line in enumerate(fh, start=1):  # noqa: B007 - number is used in the messages
                try:
                    yield line.decode("utf-8").rstrip("\n").rstrip("\r")
                except UnicodeDecodeError as err:
                    raise InputError(
                        f"{path}, line {number}: invalid UTF-8 ({err.reason} at byte {err.start})"
                    ) from err
        except (gzip.BadGzipFile, EOFError, OSError) as err:
            raise InputError(f"{path}: not a valid gzip file ({err})") from err
        if number == 0:
            raise InputError(f"{path}: file is empty")


def _columns(part: Part, langs: tuple[str, str]) -> tuple[int, int]:
    assert part.columns is not None
    missing = [lang for lang in langs if lang not in part.columns]
    if missing:
        raise InputError(
            f"{part.option}.columns: no column for language {missing[0]!r} "
            f"(columns given for: {', '.join(part.columns)}); add it or change data.src_lang/tgt_lang"
        )
    return part.columns[langs[0]], part.columns[langs[1]]


def iter_tsv(path: Path, part: Part, langs: tuple[str, str]) -> Iterator[tuple[str, str]]:
    """(src, tgt) of every TSV line; every line must have as many fields as the first."""
    cs, ct = _columns(part, langs)
    expected = None
    for number, line in enumerate(iter_lines(path), start=1):
        fields = line.split("\t")
        if expected is None:
            expected = len(fields)
            if max(cs, ct) >= expected:
                raise InputError(
                    f"{part.option}.columns: column {max(cs, ct)} asked for, but {path} has only "
                    f"{expected} tab-separated field(s) on line 1 (columns count from 0)"
                )
        elif len(fields) != expected:
            raise InputError(
                f"{path}, line {number}: {len(fields)} tab-separated fields, expected {expected} (as on line 1)"
            )
        yield fields[cs], fields[ct]


def _zip_files(paths: list[Path], option: str) -> Iterator[tuple[str, ...]]:
    iters = [iter_lines(p) for p in paths]
    n = 0
    while True:
        row = [next(it, None) for it in iters]
        if all(r is None for r in row):
            return
        if any(r is None for r in row):
            counts = [n + (0 if r is None else 1 + sum(1 for _ in it)) for r, it in zip(row, iters, strict=True)]
            sides = ", ".join(f"{p} has {c} lines" for p, c in zip(paths, counts, strict=True))
            raise InputError(f"{option}: files not aligned: {sides}")
        n += 1
        yield tuple(row)  # type: ignore[arg-type]


def iter_part(raw_dir: str | Path, ds: CorpusConfig, part: Part) -> Iterator[tuple[str, tuple[str, ...]]]:
    """Stream ``(source sentence, references)`` of a part from ``raw_dir`` (one reference unless ``src/refs``)."""
    raw_dir = Path(raw_dir)
    if part.kind == "tsv":
        for s, t in iter_tsv(raw_dir / part.ref, part, ds.langs):
            yield s, (t,)
        return
    if part.kind == "pairs":
        local = Source(part.source, path=str(raw_dir / part.source))
        files = [raw_dir / pair_file(local, part, lang) for lang in ds.langs]
    else:
        files = [raw_dir / r for r in (part.ref, *part.refs)]
    for row in _zip_files(files, part.option):
        yield row[0], tuple(row[1:])


def read_tok_refs(raw_dir: str | Path, part: Part, lang: str) -> list[str] | None:
    """The official tokenized references of ``part`` in ``lang``, if the part names them and they exist."""
    if not part.tok_refs:
        return None
    path = Path(raw_dir) / part.tok_refs.format(lang=lang)
    return list(iter_lines(path)) if path.is_file() else None
