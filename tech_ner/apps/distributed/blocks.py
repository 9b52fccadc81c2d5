"""Planning and reading the blocks of `tech-ner extract --engine ray`: the input's files (local or any URI pyarrow
opens), cut into blocks of about `block_records` records, each read on a worker by the single-host readers
(`jsonl_records`, `csv_rows`, `document_record` in `apps/records.py`), so ids, error rows and offsets are those of
`tech-ner extract`.

Planning reads each JSONL and CSV file once on the driver (the real reader finds where the records start, a byte
scan where those lines start). A UTF-8 file is cut at record starts; a UTF-16/32 file is one block. Parquet files
are cut by rows (id: the id column, else the row's number); .txt files are one document each.
"""

import fnmatch
import hashlib
import itertools
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Sequence, Tuple

from ...files.problems import InputError, format_problem, printable
from ...files.textfile import Line, csv_records, decode_lines, text_problem
from ..records import Record, csv_header, csv_rows, document_record, jsonl_records, resolve_inputs

KINDS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet", ".txt": "txt"}
DEFAULT_BLOCK_RECORDS = 500
SHARD_PREFIX = "shard-"
_EOL_BYTES = re.compile(rb"\r\n|\r|\n")
# a block never starts at a line whose first bytes decode_lines would take for a byte-order mark
_MARK_STARTS = ("\ufeff", "\udcff", "\udcfe", "\x00")
_GLOB_CHARS = re.compile(r"[*?\[]")


def is_remote(location: str) -> bool:
    return "://" in location


def filesystem_of(location: str):
    """RETURNS: (pyarrow FileSystem, path inside it, URI prefix for messages or None for local paths)."""
    from pyarrow import fs

    if "://" in location:
        try:
            filesystem, path = fs.FileSystem.from_uri(location)
        except Exception as e:  # pyarrow raises ArrowInvalid / OSError for an unknown scheme or missing credentials
            raise InputError(
                location, None, f"cannot open this location: {printable(str(e).splitlines()[0])}"
            ) from None
        return filesystem, path, location.split("://", 1)[0] + "://"
    return fs.LocalFileSystem(), os.path.abspath(location), None


@dataclass
class InputFile:
    """One file of the input: where it is, what kind, its name in messages and (.txt) its document's id."""

    location: str  # the input given: opens the file system on any worker
    path: str  # inside that file system
    kind: str
    name: str
    doc_id: str
    size: int


def resolve_files(inputs: Sequence[str], *, text_field: str = "text") -> List[InputFile]:
    """Every file of the inputs (files, folders or globs; local or any URI pyarrow opens), in order.

    A folder or glob gives its .jsonl, .ndjson, .csv, .parquet and .txt files sorted by path; a .txt file's id is
    its path relative to the folder (or the glob's fixed part), a single file's the path as given. Local files get
    the single-host checks (empty file, CSV header without the text column) before anything runs.
    """
    from pyarrow import fs

    files: List[InputFile] = []
    for raw in inputs:
        raw = str(raw)
        if raw == "-":
            raise InputError(
                None,
                None,
                "--engine ray reads files, folders or globs, not stdin (-): save the input to a .jsonl file first",
            )
        base, rest = glob_base(raw)
        pattern = rest or None
        filesystem, base_path, scheme = filesystem_of(base)
        info = filesystem.get_file_info(base_path)
        if pattern is None and info.type == fs.FileType.File:
            found = [(base_path, raw if scheme else str(Path(raw)), raw, info.size)]
        elif pattern is None and info.type != fs.FileType.Directory:
            raise InputError(raw, None, "no such file or folder")
        else:
            if info.type != fs.FileType.Directory:
                raise InputError(raw, None, "no such folder")
            selector = fs.FileSelector(base_path, recursive=True)
            inner = base_path if scheme else os.path.abspath(base_path)
            full = None if pattern is None else base_path.rstrip("/") + "/" + rest
            found = []
            # in the order of pathlib's sort (by path parts), as single-host extract reads a folder
            for item in sorted(filesystem.get_file_info(selector), key=lambda i: i.path.split("/")):
                if item.type != fs.FileType.File or Path(item.path).suffix.lower() not in KINDS:
                    continue
                if full is not None and not fnmatch.fnmatchcase(item.path, full):
                    continue
                rel = os.path.relpath(item.path, inner).replace(os.sep, "/")
                name = f"{scheme}{item.path}" if scheme else str(Path(base) / rel)
                found.append((item.path, name, rel, item.size))
            if not found:
                raise InputError(raw, None, "no .jsonl, .csv, .parquet or .txt files here")
        for path, name, doc_id, size in found:
            kind = KINDS.get(Path(path).suffix.lower())
            if kind is None:
                raise InputError(
                    raw,
                    None,
                    f"unknown input type {Path(path).suffix or '(no suffix)'!r}: expected "
                    ".jsonl, .csv, .parquet or .txt files, folders or globs of them",
                )
            if scheme is None and kind != "parquet":
                resolve_inputs([name], text_field=text_field)  # the single-host checks, with their messages
            location = base if scheme else path
            files.append(InputFile(location, path, kind, name, doc_id, size))
    return files


def glob_base(raw: str) -> Tuple[str, str]:
    """RETURNS (Tuple[str, str]): The folder before a glob's first wildcard (listed) and the rest (matched);
    (raw, "") for a plain path, or for a local path that exists as it is written (a file named "a[1].txt")."""
    pattern = _GLOB_CHARS.search(raw)
    if pattern is None or "://" not in raw and os.path.exists(raw):
        return raw, ""
    head = raw[: pattern.start()]
    if "/" not in head:
        return ".", raw
    folder = head.rsplit("/", 1)[0]
    return folder or "/", raw[len(folder) + 1 :]


def open_input(location: str, path: str, offset: int = 0):
    filesystem, _, _ = filesystem_of(location)
    f = filesystem.open_input_file(path)
    if offset:
        f.seek(offset)
    return f


# ---------------------------------------------------------------------------- planning


def _numbered(lines: Iterable[Line], first: int) -> Iterator[Line]:
    for line in lines:
        yield Line(line.number + first - 1, line.text, line.error, line.end)


def _cut_lines(file: InputFile, block_records: int, text_field: str) -> Tuple[List[Tuple[int, int]], int, List[str]]:
    """Where the blocks of a JSONL or CSV file start: [(first line, rows before it)], records, CSV header."""
    starts: List[Tuple[int, int]] = [(1, 0)]
    marked = set()  # lines a block must not start at

    def watched(lines: Iterable[Line]) -> Iterator[Line]:
        for line in lines:
            if line.text[:1] in _MARK_STARTS:
                marked.add(line.number)
            yield line

    with open_input(file.location, file.path) as f:
        lines = decode_lines(f)
        splittable = lines.codec == "utf-8"
        header: List[str] = []
        if file.kind == "jsonl":
            starts_of = (line.number for line in watched(lines) if line.text.strip())
        else:
            records = csv_records(watched(lines))
            header, _ = csv_header(file.name, records)
            if text_field not in header:
                raise InputError(
                    file.name, None, f"no {text_field!r} column in the header: name the text column with --text-field"
                )
            starts_of = (r.line for r in records if r.fields or r.error is not None)
        n = 0
        for n, line in enumerate(starts_of, 1):
            if splittable and n - 1 - starts[-1][1] >= block_records and line not in marked:
                starts.append((line, n - 1))
    return starts, n, header


def _line_offsets(file: InputFile, wanted: Sequence[int]) -> List[int]:
    """The byte offsets where lines `wanted` (ascending, > 1) start; lines end at \\r\\n, \\r or \\n as decode_lines has it."""
    offsets: List[int] = []
    targets = iter(wanted)
    target = next(targets, None)
    line, base, data = 1, 0, b""
    with open_input(file.location, file.path) as f:
        while target is not None:
            more = f.read(1 << 20)
            data += more
            end = len(data) - 1 if more and data.endswith(b"\r") else len(data)  # a \r may be half of \r\n
            for m in _EOL_BYTES.finditer(data, 0, end):
                line += 1
                if line == target:
                    offsets.append(base + m.end())
                    target = next(targets, None)
                    if target is None:
                        break
            data, base = data[end:], base + end
            if not more:
                break
    if target is not None:
        raise AssertionError(f"{file.name}: line {target} not found by the byte scan")
    return offsets


def _parquet_rows(file: InputFile, text_field: str) -> int:
    import pyarrow.parquet as pq

    with open_input(file.location, file.path) as f:
        try:
            pf = pq.ParquetFile(f)
        except Exception as e:  # pyarrow's ArrowInvalid: not a Parquet file
            raise InputError(file.name, None, f"cannot read as Parquet: {printable(str(e).splitlines()[0])}") from None
        if text_field not in pf.schema_arrow.names:
            raise InputError(
                file.name,
                None,
                f"no {text_field!r} column (columns: {printable(', '.join(pf.schema_arrow.names), 80)}): "
                "name the text column with --text-field",
            )
        return pf.metadata.num_rows


def plan_blocks(
    files: Sequence[InputFile],
    *,
    block_records: int = DEFAULT_BLOCK_RECORDS,
    text_field: str = "text",
    id_field: str = "id",
) -> List[Dict[str, Any]]:
    """Cut the input into blocks of about `block_records` records, each the spec of one shard (a JSON-able dict)."""
    if block_records < 1:
        raise InputError(None, None, f"--block-records must be >= 1, got {block_records}")
    blocks: List[Dict[str, Any]] = []

    def add(file_no: int, file: InputFile, records: int, **where: Any) -> None:
        # what the shard's rows depend on (not how the input was spelled: a folder or a glob of the same files)
        where_key = {**where, "docs": [d[1:] for d in where["docs"]]} if "docs" in where else where
        key = json.dumps([file.path, file.name, file.size, text_field, id_field, where_key], sort_keys=True)
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:10]
        shard = f"{SHARD_PREFIX}{file_no:05d}-{len(blocks):06d}-{digest}"
        blocks.append(
            {
                "shard": shard,
                "kind": file.kind,
                "location": file.location,
                "path": file.path,
                "name": file.name,
                "records": records,
                **where,
            }
        )

    i = 0
    while i < len(files):
        file = files[i]
        if file.kind == "txt":  # consecutive .txt files (one document each) go together, block_records to a block
            part = list(itertools.takewhile(lambda f: f.kind == "txt", files[i : i + block_records]))
            add(i, file, len(part), docs=[[f.location, f.path, f.name, f.doc_id] for f in part])
            i += len(part)
            continue
        i += 1
        if file.kind == "parquet":
            n = _parquet_rows(file, text_field)
            for start in range(0, n, block_records):
                add(i - 1, file, min(block_records, n - start), row_start=start, row_stop=min(n, start + block_records))
            continue
        starts, n, header = _cut_lines(file, block_records, text_field)
        offsets = [0] + _line_offsets(file, [line for line, _ in starts[1:]])
        for k, ((line, before), offset) in enumerate(zip(starts, offsets)):
            stop = starts[k + 1] if k + 1 < len(starts) else None
            records = (stop[1] if stop else n) - before
            if records or n == 0 and k == 0:
                add(
                    i - 1,
                    file,
                    records,
                    start_byte=offset,
                    first_line=line,
                    stop_line=stop[0] if stop else None,
                    rows_before=before,
                    header=header,
                )
    return blocks


# ---------------------------------------------------------------------------- reading a block


def read_block(spec: Dict[str, Any], text_field: str = "text", id_field: str = "id") -> Iterator[Record]:
    """The records of one planned block, read with the single-host readers: the same ids, texts and error rows."""
    index = itertools.count()
    kind, name = spec["kind"], spec["name"]
    if kind == "txt":
        for location, path, doc_name, doc_id in spec["docs"]:
            i = next(index)
            try:
                with open_input(location, path) as f:
                    data = f.read()
            except OSError as e:
                yield Record(i, doc_id, error=format_problem(doc_name, None, f"cannot read: {e.strerror or e}"))
                continue
            yield document_record(i, doc_id, doc_name, data)
        return
    if kind == "parquet":
        yield from _parquet_records(spec, index, text_field, id_field)
        return
    stop = spec["stop_line"]
    with open_input(spec["location"], spec["path"], spec["start_byte"]) as f:
        lines = _numbered(decode_lines(f), spec["first_line"])
        if kind == "jsonl":
            if stop is not None:
                lines = itertools.takewhile(lambda line: line.number < stop, lines)
            yield from jsonl_records(lines, name, index, text_field=text_field, id_field=id_field)
            return
        records = csv_records(lines, width=len(spec["header"]))
        if spec["first_line"] == 1:
            csv_header(name, records)
        if stop is not None:
            records = itertools.takewhile(lambda r: r.line < stop, records)
        yield from csv_rows(
            records,
            spec["header"],
            name,
            index,
            text_field=text_field,
            id_field=id_field,
            row_number=spec["rows_before"],
        )


def _parquet_records(spec: Dict[str, Any], index: Iterator[int], text_field: str, id_field: str) -> Iterator[Record]:
    import pyarrow.parquet as pq

    start, stop = spec["row_start"], spec["row_stop"]
    with open_input(spec["location"], spec["path"]) as f:
        pf = pq.ParquetFile(f)
        columns = [c for c in (text_field, id_field) if c in pf.schema_arrow.names]
        groups, first, offset = [], None, 0
        for g in range(pf.metadata.num_row_groups):
            n = pf.metadata.row_group(g).num_rows
            if offset < stop and offset + n > start:
                groups.append(g)
                first = offset if first is None else first
            offset += n
        table = pf.read_row_groups(groups, columns=columns).slice(start - first, stop - start)
    texts = table.column(text_field).to_pylist()
    ids = table.column(id_field).to_pylist() if id_field in columns else [None] * len(texts)
    for row, (text, raw_id) in enumerate(zip(texts, ids), start + 1):
        i = next(index)
        doc_id = (
            raw_id
            if isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool) and text_problem(str(raw_id)) is None
            else row
        )
        if not isinstance(text, str):
            what = "null" if text is None else f"{type(text).__name__}, not a string"
            yield Record(i, doc_id, error=format_problem(spec["name"], row, f"column {text_field!r} is {what}"))
        elif text_problem(text) is not None:
            yield Record(
                i, doc_id, error=format_problem(spec["name"], row, f"column {text_field!r} holds {text_problem(text)}")
            )
        else:
            yield Record(i, doc_id, text)
