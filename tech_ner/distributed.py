"""`tech-ner extract --engine ray`: the same rows as the single-host extractor, from a Ray cluster, as shards of a folder.

Two ways in:

- `TermExtractor`, Ray Data's batch-inference callable: `ds.map_batches(TermExtractor, fn_constructor_kwargs=
  {"model": ...}, concurrency=N, num_cpus=C, batch_format="pyarrow")` loads the pipeline once per actor (with
  `load_pipeline`, so the CPU precision is chosen as `tech-ner extract` chooses it; `n_process=1`; torch threads set
  to the CPUs Ray gave the actor) and maps each batch of records (an id and a text column) to rows: id, distinct
  terms, spans (character offsets, label, text), error. A text that is missing, not a string or not valid text is an
  error row, never a dropped one.
- `extract_distributed` (the CLI): the driver plans the input into blocks of about `block_records` records, each
  read on a worker with the single-host readers (`jsonl_records`, `csv_rows`, `document_record`), so ids, error
  rows and offsets are those of `tech-ner extract`. Each block becomes one shard, named from the block
  (`shard-FFFFF-BBBBBB-DIGEST.parquet`), written to a temporary name and renamed: a retried task (Ray restarts a
  killed actor and retries its task) rewrites the same name, `resume=True` writes only the missing shards, and
  the shards in name order are the single-host output in input order.

Planning reads each JSONL and CSV file once on the driver (the real reader finds where the records start, a byte
scan where those lines start), cheap beside the model. A UTF-8 file is cut at record starts; a UTF-16/32 file is one
block. Parquet files are cut by rows (id: the id column, else the row's number); .txt files are one document each.
Ray is imported only when used: the package works without the `distributed` extra.
"""
import fnmatch
import glob
import hashlib
import itertools
import json
import os
import re
import resource
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from .atomic import OUTPUT_MANIFEST, atomic_path, write_text_atomic
from .extract import (
    DEFAULT_MAX_PIECE_CHARS, ExtractStats, JsonlRowWriter, Record, Row, count_words, csv_header, csv_rows, document_record,
    extract_rows, jsonl_records, load_pipeline, resolve_inputs,
)
from .problems import InputError, format_problem, printable, same_file
from .textfile import Line, csv_records, decode_lines, text_problem

EXTRA_HINT = 'install the extra: pip install -e ".[distributed]" (or pip install "tech-ner[distributed]")'
KINDS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet", ".txt": "txt"}
FORMATS = ("parquet", "jsonl")
DEFAULT_BLOCK_RECORDS = 500
SHARD_PREFIX = "shard-"
_EOL_BYTES = re.compile(rb"\r\n|\r|\n")
# a block never starts at a line whose first bytes decode_lines would take for a byte-order mark
_MARK_STARTS = ("\ufeff", "\udcff", "\udcfe", "\x00")
_GLOB_CHARS = re.compile(r"[*?\[]")
_INPUT_ERROR_LINE = re.compile(r"tech_ner\.problems\.InputError: (.+)")


def require_ray():
    """RETURNS (module): `ray` with Ray Data; without the extra, an InputError naming it."""
    try:
        import pyarrow  # noqa: F401
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise InputError(None, None, f"--engine ray needs Ray Data ({e.name or e} is not installed): {EXTRA_HINT}") from None
    return ray


# ---------------------------------------------------------------------------- rows as Arrow


def row_schema(id_type=None):
    """RETURNS (pyarrow.Schema): id, terms (list of strings), spans (list of start, end, label, text), error."""
    import pyarrow as pa

    span = pa.struct([("start", pa.int64()), ("end", pa.int64()), ("label", pa.string()), ("text", pa.string())])
    return pa.schema([("id", id_type or pa.string()), ("terms", pa.list_(pa.string())), ("spans", pa.list_(span)),
                      ("error", pa.string())])


def rows_table(rows: Sequence[Row], ids=None):
    """The rows as a pyarrow Table (`row_schema`); ids are strings unless `ids` (an Arrow array) is given."""
    import pyarrow as pa

    if ids is None:
        ids = pa.array([None if r["id"] is None else str(r["id"]) for r in rows], pa.string())
    schema = row_schema(ids.type)
    columns = [ids] + [pa.array([r[name] for r in rows], schema.field(name).type) for name in ("terms", "spans", "error")]
    return pa.Table.from_arrays(columns, schema=schema)


def _as_table(batch):
    import pyarrow as pa

    if isinstance(batch, pa.Table):
        return batch
    if isinstance(batch, dict):
        return pa.table({k: pa.array(list(v)) for k, v in batch.items()})
    return pa.Table.from_pandas(batch, preserve_index=False)


def batch_records(table, text_field: str = "text", id_field: str = "id") -> List[Record]:
    """One Record per row of a batch: the text, or an error when it is missing, not a string, or not valid text."""
    if text_field not in table.column_names or id_field not in table.column_names:
        missing = text_field if text_field not in table.column_names else id_field
        raise ValueError(f"no {missing!r} column in the batch (columns: {', '.join(table.column_names)}): "
                         "name the columns with text_field= and id_field=")
    records = []
    for i, (doc_id, text) in enumerate(zip(table.column(id_field).to_pylist(), table.column(text_field).to_pylist())):
        if not isinstance(text, str):
            what = "null" if text is None else f"{type(text).__name__}, not a string"
            records.append(Record(i, doc_id, error=f"id {doc_id}: field {text_field!r} is {what}"))
        elif text_problem(text) is not None:
            records.append(Record(i, doc_id, error=f"id {doc_id}: field {text_field!r} holds {text_problem(text)}"))
        else:
            records.append(Record(i, doc_id, text))
    return records


# ---------------------------------------------------------------------------- the actor


class TermExtractor:
    """Ray Data's callable class for `map_batches`: the pipeline loaded once per actor, batches of records to rows.

    model (str): An installed pipeline package or a folder every worker can read.
    precision (Optional[str]): fp32, bf16, int8 or auto; None: the pipeline's own choice (as `tech-ner extract`).
    text_field (str): The batch's text column. id_field (str): Its id column (kept as it is, type included).
    batch_size (int): Documents per `nlp.pipe` batch.
    max_piece_chars (int): Longer texts are processed in pieces (see `extract_rows`).
    max_length (Optional[int]): Override `nlp.max_length`.
    threads (Optional[int]): Torch threads; None: the CPUs Ray assigned to this actor (1 outside Ray).
    """

    def __init__(self, model: str, *, precision: Optional[str] = None, text_field: str = "text", id_field: str = "id",
                 batch_size: int = 64, max_piece_chars: int = DEFAULT_MAX_PIECE_CHARS, max_length: Optional[int] = None,
                 threads: Optional[int] = None):
        import torch

        cpus, gpus = _assigned_resources()
        torch.set_num_threads(max(1, int(threads or cpus)))
        self.nlp = load_pipeline(model, precision=precision, gpu_id=0 if gpus else -1, max_length=max_length)
        self.text_field, self.id_field = text_field, id_field
        self.batch_size, self.max_piece_chars = batch_size, max_piece_chars

    def rows(self, records: Iterable[Record]) -> Iterator[Row]:
        """RETURNS (Iterator[Row]): One row per record, in order, exactly as `tech-ner extract` makes them."""
        return extract_rows(self.nlp, records, batch_size=self.batch_size, n_process=1,
                            max_piece_chars=self.max_piece_chars)

    def __call__(self, batch):
        """batch (pyarrow.Table, pandas.DataFrame or dict of arrays): Records. RETURNS (pyarrow.Table): Their rows."""
        table = _as_table(batch)
        rows = list(self.rows(batch_records(table, self.text_field, self.id_field)))
        return rows_table(rows, ids=table.column(self.id_field).combine_chunks())


def _assigned_resources() -> Tuple[float, float]:
    """RETURNS (Tuple[float, float]): The CPUs and GPUs Ray gave this actor; (1, 0) outside Ray."""
    try:
        import ray

        if ray.is_initialized():
            assigned = ray.get_runtime_context().get_assigned_resources()
            return assigned.get("CPU", 1.0) or 1.0, assigned.get("GPU", 0.0)
    except ImportError:
        pass
    return 1.0, 0.0


class ShardWriter(TermExtractor):
    """The CLI's actor: each input row is a planned block (JSON); it reads the block's records on this worker,
    writes their rows as one shard (temporary name, then renamed) and returns what it did."""

    def __init__(self, model: str, *, output: str, fmt: str, **kwargs):
        super().__init__(model, **kwargs)
        self.output, self.fmt = output, fmt

    def __call__(self, batch) -> Dict[str, List[Any]]:
        out: Dict[str, List[Any]] = {k: [] for k in ("shard", "rows", "errors", "error_examples", "words", "seconds",
                                                   "pid", "peak_rss_mb", "started", "finished")}
        for spec in _as_table(batch).column("block").to_pylist():
            spec = json.loads(spec)
            started = time.time()
            words = [0]

            def counted(records: Iterator[Record]) -> Iterator[Record]:
                for record in records:
                    words[0] += count_words(record.text)
                    yield record

            rows = list(self.rows(counted(read_block(spec, self.text_field, self.id_field))))
            if len(rows) != spec["records"]:  # a consistency check: planning and reading disagree
                raise AssertionError(f"{spec['shard']}: planned {spec['records']} records, read {len(rows)}")
            write_shard(self.output, spec["shard"], rows, self.fmt)
            errors = [r["error"] for r in rows if r["error"] is not None]
            out["shard"].append(spec["shard"])
            out["rows"].append(len(rows))
            out["errors"].append(len(errors))
            out["error_examples"].append(json.dumps(errors[:20]))
            out["words"].append(words[0])
            out["seconds"].append(time.time() - started)
            out["pid"].append(os.getpid())
            out["peak_rss_mb"].append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
            out["started"].append(started)
            out["finished"].append(time.time())
        return out


# ---------------------------------------------------------------------------- files


def _filesystem(location: str):
    """RETURNS: (pyarrow FileSystem, path inside it, URI prefix for messages or None for local paths)."""
    from pyarrow import fs

    if "://" in location:
        try:
            filesystem, path = fs.FileSystem.from_uri(location)
        except Exception as e:  # pyarrow raises ArrowInvalid / OSError for an unknown scheme or missing credentials
            raise InputError(location, None, f"cannot open this location: {printable(str(e).splitlines()[0])}") from None
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
            raise InputError(None, None, "--engine ray reads files, folders or globs, not stdin (-): save the input "
                                         "to a .jsonl file first")
        base, rest = _glob_base(raw)
        pattern = rest or None
        filesystem, base_path, scheme = _filesystem(base)
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
                raise InputError(raw, None, f"unknown input type {Path(path).suffix or '(no suffix)'!r}: expected "
                                            ".jsonl, .csv, .parquet or .txt files, folders or globs of them")
            if scheme is None and kind != "parquet":
                resolve_inputs([name], text_field=text_field)  # the single-host checks, with their messages
            location = base if scheme else path
            files.append(InputFile(location, path, kind, name, doc_id, size))
    return files


def _glob_base(raw: str) -> Tuple[str, str]:
    """RETURNS (Tuple[str, str]): The folder before a glob's first wildcard (listed) and the rest (matched);
    (raw, "") for a plain path, or for a local path that exists as it is written (a file named "a[1].txt")."""
    pattern = _GLOB_CHARS.search(raw)
    if pattern is None or "://" not in raw and os.path.exists(raw):
        return raw, ""
    head = raw[:pattern.start()]
    if "/" not in head:
        return ".", raw
    folder = head.rsplit("/", 1)[0]
    return folder or "/", raw[len(folder) + 1:]


def _check_output_outside(output: str, inputs: Sequence[str], files: Sequence[InputFile]) -> None:
    """Refuse a local output that is an input, or lies in a folder the input lists (the next run would read the shards)."""
    same_file(output, [f.path for f in files if "://" not in f.location])
    out = Path(output).resolve()
    for raw in inputs:
        listed = Path(_glob_base(str(raw))[0])
        if "://" not in str(raw) and listed.is_dir() and (out == listed.resolve() or listed.resolve() in out.parents):
            raise InputError(output, None, f"is inside the input folder {listed}: choose an output folder outside it")


def _open(location: str, path: str, offset: int = 0):
    filesystem, _, _ = _filesystem(location)
    f = filesystem.open_input_file(path)
    if offset:
        f.seek(offset)
    return f


# ---------------------------------------------------------------------------- planning


def _numbered(lines: Iterable[Line], first: int) -> Iterator[Line]:
    for line in lines:
        yield Line(line.number + first - 1, line.text, line.error)


def _cut_lines(file: InputFile, block_records: int, text_field: str) -> Tuple[List[Tuple[int, int]], int, List[str]]:
    """Where the blocks of a JSONL or CSV file start: [(first line, rows before it)], records, CSV header."""
    starts: List[Tuple[int, int]] = [(1, 0)]
    marked = set()  # lines a block must not start at

    def watched(lines: Iterable[Line]) -> Iterator[Line]:
        for line in lines:
            if line.text[:1] in _MARK_STARTS:
                marked.add(line.number)
            yield line

    with _open(file.location, file.path) as f:
        lines = decode_lines(f)
        splittable = lines.codec == "utf-8"
        header: List[str] = []
        if file.kind == "jsonl":
            starts_of = (line.number for line in watched(lines) if line.text.strip())
        else:
            records = csv_records(watched(lines))
            header, _ = csv_header(file.name, records)
            if text_field not in header:
                raise InputError(file.name, None, f"no {text_field!r} column in the header: name the text column with --text-field")
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
    with _open(file.location, file.path) as f:
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

    with _open(file.location, file.path) as f:
        try:
            pf = pq.ParquetFile(f)
        except Exception as e:  # pyarrow's ArrowInvalid: not a Parquet file
            raise InputError(file.name, None, f"cannot read as Parquet: {printable(str(e).splitlines()[0])}") from None
        if text_field not in pf.schema_arrow.names:
            raise InputError(file.name, None, f"no {text_field!r} column (columns: {printable(', '.join(pf.schema_arrow.names), 80)}): "
                                              "name the text column with --text-field")
        return pf.metadata.num_rows


def plan_blocks(files: Sequence[InputFile], *, block_records: int = DEFAULT_BLOCK_RECORDS, text_field: str = "text",
                id_field: str = "id") -> List[Dict[str, Any]]:
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
        blocks.append({"shard": shard, "kind": file.kind, "location": file.location, "path": file.path,
                       "name": file.name, "records": records, **where})

    i = 0
    while i < len(files):
        file = files[i]
        if file.kind == "txt":  # consecutive .txt files (one document each) go together, block_records to a block
            part = list(itertools.takewhile(lambda f: f.kind == "txt", files[i:i + block_records]))
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
                add(i - 1, file, records, start_byte=offset, first_line=line, stop_line=stop[0] if stop else None,
                    rows_before=before, header=header)
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
                with _open(location, path) as f:
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
    with _open(spec["location"], spec["path"], spec["start_byte"]) as f:
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
        yield from csv_rows(records, spec["header"], name, index, text_field=text_field, id_field=id_field,
                            row_number=spec["rows_before"])


def _parquet_records(spec: Dict[str, Any], index: Iterator[int], text_field: str, id_field: str) -> Iterator[Record]:
    import pyarrow.parquet as pq

    start, stop = spec["row_start"], spec["row_stop"]
    with _open(spec["location"], spec["path"]) as f:
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
        doc_id = raw_id if isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool) and text_problem(str(raw_id)) is None else row
        if not isinstance(text, str):
            what = "null" if text is None else f"{type(text).__name__}, not a string"
            yield Record(i, doc_id, error=format_problem(spec["name"], row, f"column {text_field!r} is {what}"))
        elif text_problem(text) is not None:
            yield Record(i, doc_id, error=format_problem(spec["name"], row, f"column {text_field!r} holds {text_problem(text)}"))
        else:
            yield Record(i, doc_id, text)


# ---------------------------------------------------------------------------- shards


def _is_remote(output: str) -> bool:
    return "://" in output


def write_shard(output: str, shard: str, rows: Sequence[Row], fmt: str) -> None:
    """Write one shard under a temporary name and rename it, so a shard is either whole or absent."""
    if not _is_remote(output):
        with atomic_path(Path(output) / f"{shard}.{fmt}") as tmp:
            _write_rows(str(tmp), rows, fmt, None)
        return
    filesystem, folder, _ = _filesystem(output)
    tmp = f"{folder}/.{shard}.{fmt}.{uuid.uuid4().hex[:8]}.tmp"
    _write_rows(tmp, rows, fmt, filesystem)
    filesystem.move(tmp, f"{folder}/{shard}.{fmt}")  # an object store's move is a whole copy: never half visible


def _write_rows(path: str, rows: Sequence[Row], fmt: str, filesystem) -> None:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(rows_table(rows), path, filesystem=filesystem)
        return
    if filesystem is None:
        with open(path, "w", encoding="utf-8", newline="") as f:
            writer = JsonlRowWriter(f)
            for row in rows:
                writer.write(row)
        return
    with filesystem.open_output_stream(path) as f:
        f.write("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8"))


def _listing(output: str) -> List[str]:
    """The names in the output folder ([] when it does not exist yet)."""
    from pyarrow import fs

    filesystem, folder, _ = _filesystem(output)
    info = filesystem.get_file_info(folder)
    if info.type == fs.FileType.NotFound:
        return []
    if info.type != fs.FileType.Directory:
        raise InputError(output, None, "is a file: give a folder for the shards (nothing was written)")
    return sorted(i.base_name for i in filesystem.get_file_info(fs.FileSelector(folder)))


def _read_manifest(output: str) -> Dict[str, Any]:
    filesystem, folder, _ = _filesystem(output)
    try:
        with filesystem.open_input_stream(f"{folder}/{OUTPUT_MANIFEST}") as f:
            manifest = json.loads(f.read().decode("utf-8"))
        return manifest if isinstance(manifest, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_manifest(output: str, manifest: Dict[str, Any]) -> None:
    text = json.dumps(manifest, indent=1) + "\n"
    if not _is_remote(output):
        Path(output).mkdir(parents=True, exist_ok=True)
        write_text_atomic(Path(output) / OUTPUT_MANIFEST, text)
        return
    filesystem, folder, _ = _filesystem(output)
    filesystem.create_dir(folder, recursive=True)  # on object storage a prefix needs none: a no-op there
    tmp = f"{folder}/.{OUTPUT_MANIFEST}.{uuid.uuid4().hex[:8]}.tmp"
    with filesystem.open_output_stream(tmp) as f:
        f.write(text.encode("utf-8"))
    filesystem.move(tmp, f"{folder}/{OUTPUT_MANIFEST}")


def _is_own_temp(name: str, shards: Iterable[str]) -> bool:
    """A temporary file this tool left beside one of its shards (a worker killed while writing it)."""
    return name.startswith(".") and name.endswith(".tmp") and any(name.startswith(f".{s}.") for s in shards)


def _check_output_folder(output: str, shards: List[str], fmt: str, resume: bool) -> Tuple[List[str], List[str]]:
    """Check the output folder before anything is written there.

    RETURNS (Tuple[List[str], List[str]]): The shards already written (resume), and the files of an earlier plan
        that this tool wrote there (listed in its manifest), to be replaced.
    """
    names = _listing(output)
    manifest = _read_manifest(output)
    own = set(n for n in manifest.get("files", []) if isinstance(n, str)) | {OUTPUT_MANIFEST}
    planned = {f"{s}.{fmt}" for s in shards}
    foreign = [n for n in names if n not in own and not _is_own_temp(n, [n2.rsplit(".", 1)[0] for n2 in own])]
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise InputError(output, None, f"holds files this tool did not write ({shown}); give a new or empty folder "
                                       "for the shards (nothing was written)")
    if resume and names and own - {OUTPUT_MANIFEST} != planned:
        raise InputError(output, None, "holds shards of another plan (the input, --format, --block-records or a field "
                                       "changed): run without --resume to start over")
    done = [s for s in shards if f"{s}.{fmt}" in names] if resume else []
    return done, [n for n in names if n in own - planned - {OUTPUT_MANIFEST}]


def _start_output(output: str, shards: List[str], fmt: str, stale: List[str]) -> None:
    """Remove the shards of an earlier plan (listed as this tool's own) and record the plan in the manifest."""
    filesystem, folder, _ = _filesystem(output)
    for name in stale:
        filesystem.delete_file(f"{folder}/{name}")
    _write_manifest(output, {"files": sorted(f"{s}.{fmt}" for s in shards), "complete": False})


def read_output(output: str) -> Iterator[Row]:
    """The rows of an output folder, shard by shard in name order: the input order (Parquet ids are strings)."""
    filesystem, folder, _ = _filesystem(output)
    for name in _listing(output):
        if not name.startswith(SHARD_PREFIX):
            continue
        if name.endswith(".parquet"):
            import pyarrow.parquet as pq

            yield from pq.read_table(f"{folder}/{name}", filesystem=filesystem).to_pylist()
        elif name.endswith(".jsonl"):
            with filesystem.open_input_stream(f"{folder}/{name}") as f:
                yield from (json.loads(line) for line in f.read().decode("utf-8").splitlines())


# ---------------------------------------------------------------------------- the run


@dataclass
class DistributedStats(ExtractStats):
    """What a distributed run did: `ExtractStats` (rows, errors, words of this run; `resumed`: rows in the
    shards already there), and

    shards (int): Shards written by this run. shards_resumed (int): Shards already there. records (int): Records planned.
    seconds (float): From submitting the first block to the last shard written (actors' start-up included).
    busy_seconds (float): From the first block an actor began to the last shard written (start-up excluded).
    workers (Dict[int, float]): Peak RSS in MB of each worker process (by pid).
    """

    shards: int = 0
    shards_resumed: int = 0
    records: int = 0
    busy_seconds: float = 0.0
    workers: Dict[int, float] = field(default_factory=dict)


def _user_errors(items: Iterator[Any]) -> Iterator[Any]:
    """Re-raise an InputError a worker raised (e.g. a model it cannot load) as one line, not as Ray's wrapper with
    its traceback. An actor that fails in `__init__` reaches the driver as ActorDiedError, with the InputError only
    in its message text: that line is taken from there."""
    try:
        yield from items
    except Exception as e:
        seen, cause = set(), e
        while cause is not None and id(cause) not in seen:
            seen.add(id(cause))
            if type(cause) is InputError:
                raise InputError(cause.path, cause.line, cause.message) from None
            found = _INPUT_ERROR_LINE.findall(str(cause))
            if found:
                raise InputError(None, None, found[-1].strip()) from None
            cause = getattr(cause, "cause", None) or cause.__cause__ or cause.__context__
        raise


def _check_resources(ray, workers: int, cpus: float, gpus: float) -> None:
    total = ray.cluster_resources()
    need = {"CPU": workers * cpus, "GPU": workers * gpus}
    for what, amount in need.items():
        if amount and total.get(what, 0) < amount:
            raise InputError(None, None, f"{workers} workers x {amount / workers:g} {what}s need {amount:g} {what}s; "
                                         f"the cluster has {total.get(what, 0):g}: lower --workers or the per-worker "
                                         f"{what.lower()}s")


def extract_distributed(model: str, inputs: Sequence[str], output: str, *, fmt: str = "parquet",
                        address: Optional[str] = None, workers: int = 1, cpus_per_worker: float = 1,
                        gpus_per_worker: float = 0, resume: bool = False, text_field: str = "text", id_field: str = "id",
                        precision: Optional[str] = None, batch_size: int = 64,
                        block_records: int = DEFAULT_BLOCK_RECORDS, max_piece_chars: int = DEFAULT_MAX_PIECE_CHARS,
                        max_length: Optional[int] = None, progress: bool = False,
                        on_shard: Optional[Callable[[Dict[str, Any], int, int], None]] = None) -> DistributedStats:
    """Run the pipeline over the inputs on Ray: one shard per planned block in the folder `output`.

    Without `address` and without a running Ray in this process, a local Ray is started (and stopped after).
    on_shard (Optional[Callable]): Called with each finished shard's summary, the shards done and the shards to do.
    RETURNS (DistributedStats): What was written.
    """
    if fmt not in FORMATS:
        raise InputError(None, None, f"--format {fmt!r}: expected parquet or jsonl")
    if workers < 1 or cpus_per_worker <= 0 or gpus_per_worker < 0:
        raise InputError(None, None, "--workers must be >= 1, --cpus-per-worker > 0 and --gpus-per-worker >= 0")
    ray = require_ray()
    files = resolve_files(inputs, text_field=text_field)
    if not _is_remote(output):
        _check_output_outside(output, inputs, files)
    blocks = plan_blocks(files, block_records=block_records, text_field=text_field, id_field=id_field)
    shards = [b["shard"] for b in blocks]
    done_list, stale = _check_output_folder(output, shards, fmt, resume)
    done = set(done_list)
    if os.sep in str(model) and "://" not in str(model) and not Path(model).exists():  # before any worker tries
        raise InputError(model, None, "cannot load the pipeline: no such folder")
    _start_output(output, shards, fmt, stale)
    todo = [b for b in blocks if b["shard"] not in done]
    stats = DistributedStats(resumed=sum(b["records"] for b in blocks if b["shard"] in done), shards_resumed=len(done),
                             records=sum(b["records"] for b in blocks), output=Path(output) if not _is_remote(output) else None)
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        _check_resources(ray, workers, cpus_per_worker, gpus_per_worker)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = progress
        context.print_on_execution_start = False
        t0 = time.perf_counter()
        first, last = float("inf"), float("-inf")
        if todo:
            ds = ray.data.from_items([{"block": json.dumps(b)} for b in todo], override_num_blocks=len(todo))
            results = ds.map_batches(
                ShardWriter, batch_size=1, num_cpus=cpus_per_worker, num_gpus=gpus_per_worker,
                # a fixed pool (what concurrency=N means), one block at a time per actor: the blocks spread evenly
                compute=ray.data.ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=1),
                fn_constructor_kwargs={"model": str(model), "output": str(output), "fmt": fmt, "precision": precision,
                                       "text_field": text_field, "id_field": id_field, "batch_size": batch_size,
                                       "max_piece_chars": max_piece_chars, "max_length": max_length})
            for summary in _user_errors(results.iter_rows()):
                stats.shards += 1
                stats.rows += summary["rows"]
                stats.errors += summary["errors"]
                stats.words += summary["words"]
                if len(stats.error_examples) < 20:
                    stats.error_examples += json.loads(summary["error_examples"])[:20 - len(stats.error_examples)]
                first = min(first, float(summary["started"]))
                last = max(last, float(summary["finished"]))
                pid = int(summary["pid"])
                stats.workers[pid] = max(stats.workers.get(pid, 0.0), float(summary["peak_rss_mb"]))
                if on_shard is not None:
                    on_shard(summary, stats.shards, len(todo))
        stats.seconds = time.perf_counter() - t0
        stats.busy_seconds = max(0.0, last - first)
    finally:
        if started_here:
            ray.shutdown()
    missing = [s for s in shards if f"{s}.{fmt}" not in _listing(output)]
    planned_rows = sum(b["records"] for b in todo)
    if missing or stats.rows != planned_rows:  # a consistency check: every record in exactly one row
        raise AssertionError(f"{len(missing)} shards missing, {stats.rows} rows written of {planned_rows} planned")
    filesystem, folder, _ = _filesystem(output)
    for name in _listing(output):
        if _is_own_temp(name, shards):  # left by a worker killed while writing; its task was retried
            filesystem.delete_file(f"{folder}/{name}")
    _write_manifest(output, {"files": sorted(f"{s}.{fmt}" for s in shards), "complete": True,
                             "records": stats.records})
    return stats


def run_command(inputs: Sequence[str], output, *, model: str, fmt: str, strict: bool, n_process: int, gpu_id: int,
                progress: bool, **options: Any) -> None:
    """`tech-ner extract --engine ray`: run `extract_distributed` and print what `tech-ner extract` prints."""
    import typer

    if strict:
        raise InputError(None, None, "--strict is for --engine local: with --engine ray a malformed record is an error "
                                     "row, counted in the summary")
    if n_process != 1 or gpu_id != -1:
        raise InputError(None, None, "--n-process and --gpu-id are for --engine local: with --engine ray use --workers, "
                                     "--cpus-per-worker and --gpus-per-worker")

    def shown(summary: Dict[str, Any], done: int, todo: int) -> None:
        typer.echo(f"shard {done}/{todo}: {summary['shard']} ({summary['rows']} rows, {summary['errors']} error rows, "
                   f"{summary['words'] / max(summary['seconds'], 1e-9):,.0f} words/s)", err=True)

    require_ray()
    import logging

    logging.getLogger("ray.data").setLevel(logging.WARNING)  # the summary line below says what the run did
    if progress:
        typer.echo("planning the shards, then starting Ray ...", err=True)
    stats = extract_distributed(model, inputs, str(output), fmt=fmt, on_shard=shown if progress else None, **options)
    for message in stats.error_examples:
        typer.echo(f"warning: {message}; wrote an error row", err=True)
    if stats.errors > len(stats.error_examples):
        typer.echo(f"warning: ... and {stats.errors - len(stats.error_examples)} more error rows", err=True)
    resumed = f", {stats.shards_resumed} shards resumed" if stats.shards_resumed else ""
    peak = max(stats.workers.values(), default=0.0)
    typer.echo(f"Wrote {stats.rows} rows in {stats.shards} shards ({stats.errors} error rows{resumed}; {stats.records} "
               f"records in all) to {output}: {stats.words:,} words in {stats.seconds:.1f} s ({stats.words_per_s:,.0f} "
               f"words/s, {len(stats.workers)} worker processes, peak RSS {peak:,.0f} MB)")
