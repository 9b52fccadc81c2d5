"""Run a pipeline over a large corpus: one output row per input document, in input order.

Inputs stream (`iter_records`): `.txt` files or folders of them (one document
per file, id = path relative to the folder), `.jsonl` (a text field per line),
`.csv` (a text column) or stdin (one document per line). A malformed line or
row becomes an error row (or stops a strict run), so the output always has
exactly one row per input document.

Memory stays flat over any number of documents (`extract_rows`): a
`doc_cleaner` drops the transformer's per-document output once the NER has
used it, each chunk of documents runs inside `nlp.memory_zone()` (strings the
chunk added to the vocab are freed after it), and rows are written as they
come. A text longer than `max_piece_chars` (default 5,000 characters) is
cut into pieces at paragraph, sentence or whitespace boundaries, so memory is
bounded by the piece, not the document; the pieces' entities come back as one
row with the text's own character offsets and terms, the row the text would
give in one piece (a text longer than `nlp.max_length` also warns,
`LongDocumentWarning`).

`extract` writes `OUTPUT.partial` row by row (each row flushed) and renames it
to OUTPUT at the end; `resume=True` counts the complete rows of an existing
partial file, drops a trailing incomplete line, skips that many inputs and
appends the rest.
"""
import csv
import itertools
import json
import os
import re
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence, TextIO, Tuple, Union

from spacy.language import Language
from spacy.tokens import Doc

from .problems import SHOWN_CHARS, InputError, check_output, format_problem, printable, same_file
from .textfile import CsvRecord, Line, csv_records, decode_lines, invalid_at, json_text_problem, pick_codec, text_problem

STDIN = "-"
INPUT_SUFFIXES = {".txt": "txt", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
OUTPUT_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
CSV_HEADER = ("id", "terms", "spans", "error")
CLEANER_NAME = "extract_doc_cleaner"
PARTIAL_SUFFIX = ".partial"
# a batch's transformer output and NER features are what peak, about 2 KB per character of the batch (measured:
# 64 pieces of 10,000 characters took 1.96 GB in all, a whole 2 MB document 5.5 GB); 64 pieces of 5,000 stay
# near 1.3 GB, and few texts of ordinary length are cut
DEFAULT_MAX_PIECE_CHARS = 5_000
Row = Dict[str, Any]


class LongDocumentWarning(UserWarning):
    """A text longer than `nlp.max_length` was split into pieces to be processed."""


@dataclass
class Record:
    """One input document, or the error that stands in for it.

    index (int): Position among all input documents, from 0.
    id (Any): The document's id (str or int).
    text (Optional[str]): The text; None for an error, or for a document skipped on resume.
    error (Optional[str]): `file:line: message` when the input was malformed.
    """

    index: int
    id: Any
    text: Optional[str] = None
    error: Optional[str] = None


@dataclass
class Source:
    """One resolved input: kind is txt, jsonl, csv or stdin."""

    kind: str
    path: Optional[Path]
    files: List[Tuple[Path, str]] = field(default_factory=list)  # txt: (file, id)

    @property
    def name(self) -> str:
        return "<stdin>" if self.path is None else str(self.path)


# ---------------------------------------------------------------------------- inputs


def resolve_inputs(inputs: Sequence[Union[str, Path]], *, text_field: str = "text") -> List[Source]:
    """Check every input before anything runs, so a bad one stops the run with one clear line.

    inputs (Sequence[Union[str, Path]]): Files, folders of .txt files, or "-" for stdin.
    text_field (str): The CSV column (and JSONL field) holding the text.
    RETURNS (List[Source]): The inputs in order.
    """
    if not inputs:
        raise InputError(None, None, "no inputs: give .txt/.jsonl/.csv files, folders of .txt files, or - for stdin")
    sources: List[Source] = []
    for raw in inputs:
        if str(raw) == STDIN:
            if any(s.kind == "stdin" for s in sources):
                raise InputError(None, None, "stdin (-) can be given only once")
            sources.append(Source("stdin", None))
            continue
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() == ".txt")
            if not files:
                raise InputError(path, None, "no .txt files in this folder")
            sources.append(Source("txt", path, [(p, p.relative_to(path).as_posix()) for p in files]))
            continue
        if not path.exists():
            raise InputError(path, None, "no such file or folder")
        kind = INPUT_SUFFIXES.get(path.suffix.lower())
        if kind is None:
            raise InputError(path, None, f"unknown input type {path.suffix or '(no suffix)'!r}: expected .txt, .jsonl or "
                                         ".csv files, folders of .txt files, or - for stdin")
        if kind == "txt":
            sources.append(Source("txt", path, [(path, str(raw))]))
            continue
        if _is_blank(path):
            what = "a header row with a" if kind == "csv" else "one JSON object per line, each with a"
            raise InputError(path, None, f"empty file: expected {what} {text_field!r} field")
        if kind == "csv":
            _csv_columns(path, text_field)
        sources.append(Source(kind, path))
    return sources


def _is_blank(path: Path) -> bool:
    """Whether a file holds nothing but whitespace (read only as far as the first other byte)."""
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            if block.strip():
                return False
    return True


def _where(name: str, line: Optional[int], message: str) -> str:
    return format_problem(name, line, message)


def _safe_id(value: str) -> str:
    # a file name that is not UTF-8 comes back from the OS with lone surrogates, which no output can hold:
    # its bytes are written as \xNN instead (the same every run, so --resume still matches)
    if text_problem(value) is None:
        return value
    return os.fsencode(value).decode("utf-8", "backslashreplace").replace("\x00", "\\x00")


def csv_header(path: Union[str, Path], records: Iterator[CsvRecord]) -> Tuple[List[str], int]:
    """RETURNS (Tuple[List[str], int]): The header's columns (stripped) and its line, read from `records`."""
    for record in records:
        if record.error is not None:
            raise InputError(path, record.error_line, f"cannot read the header row: {record.error}")
        if record.fields:
            return [c.strip() for c in record.fields], record.line
    return [], 0


def _csv_columns(path: Path, text_field: str) -> List[str]:
    with open(path, "rb") as f:
        columns, line = csv_header(path, csv_records(decode_lines(f)))
    if not columns:
        raise InputError(path, None, f"empty file: expected a header row with a {text_field!r} column")
    if text_field not in columns:
        raise InputError(path, line, f"no {text_field!r} column in the header (columns: {printable(', '.join(columns), SHOWN_CHARS)}): "
                                     "name the text column with --text-field")
    return columns


def _json_id(value: Any) -> Any:
    if isinstance(value, str) or isinstance(value, int) and not isinstance(value, bool):
        return value
    return json.dumps(value, ensure_ascii=False)


def _decode_document(data: bytes) -> Tuple[Optional[str], Optional[Tuple[int, str]]]:
    """A whole .txt file's text (its line ends kept: offsets are into it), or (line, problem)."""
    codec, skip, _ = pick_codec(data[:4])
    label = "UTF-8" if codec == "utf-8" else codec
    try:
        text = data[skip:].decode(codec)
    except UnicodeDecodeError as e:
        line = data[skip:skip + e.start].decode(codec, errors="replace").count("\n") + 1
        return None, (line, f"not valid {label} (byte 0x{data[skip + e.start]:02X})")
    at = invalid_at(text)
    if at is not None:
        line = text.count("\n", 0, at) + 1
        return None, (line, f"the text holds {text_problem(text[at:])}")
    return text, None


def _read_txt(source: Source, index: Iterator[int], skip: int) -> Iterator[Record]:
    for path, doc_id in source.files:
        i = next(index)
        doc_id = _safe_id(doc_id)
        if i < skip:  # resuming: only the id is needed
            yield Record(i, doc_id)
            continue
        try:
            data = path.read_bytes()
        except OSError as e:
            yield Record(i, doc_id, error=_where(str(path), None, f"cannot read: {e.strerror or e}"))
            continue
        yield document_record(i, doc_id, str(path), data)


def document_record(index: int, doc_id: Any, name: str, data: bytes) -> Record:
    """One .txt file as one document: its text (line ends kept), or an error naming the line that cannot be read.

    index (int): The record's position. doc_id (Any): Its id. name (str): The file, for the message.
    data (bytes): The file's bytes.
    RETURNS (Record): The document.
    """
    text, problem = _decode_document(data)
    if problem is not None:
        return Record(index, doc_id, error=_where(name, problem[0], problem[1]))
    return Record(index, doc_id, text)


def _read_jsonl(source: Source, index: Iterator[int], text_field: str, id_field: str) -> Iterator[Record]:
    with open(source.path, "rb") as f:
        yield from jsonl_records(decode_lines(f), source.name, index, text_field=text_field, id_field=id_field)


def jsonl_records(lines: Iterable[Line], name: str, index: Iterator[int], *, text_field: str = "text",
                  id_field: str = "id") -> Iterator[Record]:
    """One record per non-blank JSONL line (id: the id field, else the line number).

    lines (Iterable[Line]): From `textfile.decode_lines` (numbered as in the file).
    name (str): The file, for messages. index (Iterator[int]): Gives each record's position.
    RETURNS (Iterator[Record]): The documents; malformed lines carry `error`.
    """
    for line in lines:
        n = line.number
        if not line.text.strip():
            continue
        i = next(index)
        if line.error is not None:
            yield Record(i, n, error=_where(name, n, line.error))
            continue
        try:
            obj = json.loads(line.text)
        except json.JSONDecodeError as e:
            yield Record(i, n, error=_where(name, n, f"invalid JSON: {e.msg} (column {e.colno})"))
            continue
        except RecursionError:
            yield Record(i, n, error=_where(name, n, "invalid JSON: nested too deeply to read"))
            continue
        if not isinstance(obj, dict):
            yield Record(i, n, error=_where(name, n, f"expected a JSON object, found {type(obj).__name__}"))
            continue
        raw_id = obj.get(id_field)
        doc_id = _json_id(raw_id) if raw_id is not None and json_text_problem(raw_id) is None else n
        invalid = json_text_problem(obj)
        if invalid is not None:
            # the text or id could not be written, and a field that cannot is no valid JSON text either
            yield Record(i, doc_id, error=_where(name, n, f"{invalid[0]} holds {invalid[1]}"))
            continue
        if text_field not in obj:
            fields = printable(", ".join(map(str, obj)), SHOWN_CHARS) if obj else "none"
            yield Record(i, doc_id, error=_where(name, n, f"no {text_field!r} field (fields: {fields}): "
                                                          "name the text field with --text-field"))
            continue
        text = obj[text_field]
        if not isinstance(text, str):
            yield Record(i, doc_id, error=_where(name, n, f"field {text_field!r} is {type(text).__name__}, not a string"))
            continue
        yield Record(i, doc_id, text)


def _read_csv(source: Source, index: Iterator[int], text_field: str, id_field: str) -> Iterator[Record]:
    """One record per CSV row, read by `textfile.csv_records` (a stray quote costs its own line, not the rows after it)."""
    with open(source.path, "rb") as f:
        records = csv_records(decode_lines(f))
        header, _ = csv_header(source.path, records)
        yield from csv_rows(records, header, source.name, index, text_field=text_field, id_field=id_field)


def csv_rows(records: Iterable[CsvRecord], header: Sequence[str], name: str, index: Iterator[int], *,
             text_field: str = "text", id_field: str = "id", row_number: int = 0) -> Iterator[Record]:
    """One record per CSV row after the header (id: the id column, else the row's number).

    records (Iterable[CsvRecord]): From `textfile.csv_records`, after the header row.
    header (Sequence[str]): The header's columns (see `csv_header`); it holds `text_field`.
    name (str): The file, for messages. index (Iterator[int]): Gives each record's position.
    row_number (int): Rows before the first of `records` (their numbers are the ids of rows without one).
    RETURNS (Iterator[Record]): The documents; malformed rows carry `error`.
    """
    text_col = header.index(text_field)
    id_col = header.index(id_field) if id_field in header else None
    for record in records:
        row = record.fields
        if not row and record.error is None:  # a blank line is no row
            continue
        row_number += 1
        i = next(index)
        doc_id: Any = row_number
        if id_col is not None and id_col < len(row) and row[id_col] != "" and text_problem(row[id_col]) is None:
            doc_id = row[id_col]
        if record.error is not None:
            yield Record(i, doc_id, error=_where(name, record.error_line, record.error))
        elif len(row) != len(header):
            yield Record(i, doc_id, error=_where(name, record.line, f"malformed CSV row: expected {len(header)} "
                                                 f"fields ({printable(', '.join(header), SHOWN_CHARS)}), found {len(row)}"))
        else:
            bad = next((c for c in (text_col, id_col) if c is not None and text_problem(row[c])), None)
            if bad is not None:
                yield Record(i, doc_id, error=_where(name, record.line, f"column {header[bad]!r} holds {text_problem(row[bad])}"))
            else:
                yield Record(i, doc_id, row[text_col])


def _read_stdin(index: Iterator[int], stream: Optional[TextIO]) -> Iterator[Record]:
    stream = sys.stdin if stream is None else stream
    binary = getattr(stream, "buffer", None)
    if binary is None:  # a plain text stream (tests)
        lines = (Line(n, line.rstrip("\r\n")) for n, line in enumerate(stream, 1))
    else:
        lines = decode_lines(binary)
    for line in lines:
        i = next(index)
        problem = line.error or (f"the line holds {text_problem(line.text)}" if text_problem(line.text) else None)
        if problem is not None:
            yield Record(i, line.number, error=_where("<stdin>", line.number, problem))
        else:
            yield Record(i, line.number, line.text)


def iter_records(sources: Sequence[Source], *, text_field: str = "text", id_field: str = "id", skip: int = 0,
                 stdin: Optional[TextIO] = None) -> Iterator[Record]:
    """Stream the documents of every input, in order; one Record per document.

    sources (Sequence[Source]): From `resolve_inputs`.
    text_field (str): The JSONL field / CSV column with the text.
    id_field (str): The JSONL field / CSV column with the id (else the line or row number).
    skip (int): The first `skip` .txt documents are not read (their records have text None).
    stdin (Optional[TextIO]): The stream for "-" (default sys.stdin).
    RETURNS (Iterator[Record]): The documents; malformed ones carry `error`.
    """
    index = itertools.count()
    for source in sources:
        if source.kind == "txt":
            yield from _read_txt(source, index, skip)
        elif source.kind == "jsonl":
            yield from _read_jsonl(source, index, text_field, id_field)
        elif source.kind == "csv":
            yield from _read_csv(source, index, text_field, id_field)
        else:
            yield from _read_stdin(index, stdin)


# ---------------------------------------------------------------------------- long texts

_PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*\n\s*")
_SENTENCE_END = re.compile(r"[.!?\u2026][\"'\u2019\u201d)\]]*\s+")
_WHITESPACE = re.compile(r"\s+")


def split_text(text: str, max_chars: int) -> List[Tuple[int, int]]:
    """Cut a text into consecutive pieces of at most `max_chars` characters.

    Each cut is after the last paragraph break in the piece's last three
    quarters, else after the last sentence end, else after the last
    whitespace, else (one huge "word") at `max_chars`. The pieces cover the
    text exactly: joined, they give it back.

    text (str): The text.
    max_chars (int): The longest piece.
    RETURNS (List[Tuple[int, int]]): (start, end) character offsets of the pieces.
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be >= 1, got {max_chars}")
    pieces: List[Tuple[int, int]] = []
    start, n = 0, len(text)
    while n - start > max_chars:
        end = start + max_chars
        earliest = start + max_chars // 4
        cut = None
        for pattern in (_PARAGRAPH_BREAK, _SENTENCE_END, _WHITESPACE):
            last = None
            for m in pattern.finditer(text, earliest, end):
                last = m
            if last is not None:
                cut = last.end()
                break
        cut = cut or end
        pieces.append((start, cut))
        start = cut
    pieces.append((start, n))
    return pieces


# ---------------------------------------------------------------------------- pipeline


def add_doc_cleaner(nlp: Language) -> Language:
    """Drop `doc._.trf_data` and `doc.tensor` at the end of the pipeline, so
    nothing keeps the transformer's output alive (and `n_process` workers do
    not send it back). Idempotent.

    RETURNS (Language): The same pipeline.
    """
    if CLEANER_NAME not in nlp.pipe_names:
        nlp.add_pipe("doc_cleaner", name=CLEANER_NAME, last=True,
                     config={"attrs": {"_.trf_data": None, "tensor": None}, "silent": True})
    return nlp


def load_pipeline(model: Union[str, Path], *, precision: Optional[str] = None, gpu_id: int = -1,
                  max_length: Optional[int] = None) -> Language:
    """Load a pipeline for extraction: doc cleaner added, precision applied.

    model (Union[str, Path]): An installed package name or a pipeline folder.
    precision (Optional[str]): fp32, bf16, int8 or auto; None keeps what the
        pipeline's own `cpu_precision` component applies (fp32 without one).
    gpu_id (int): GPU to run on, or -1 for CPU.
    max_length (Optional[int]): Override `nlp.max_length` (longer texts are split).
    RETURNS (Language): The pipeline.
    """
    import spacy

    from . import registrations  # noqa: F401  (config functions of our pipelines)
    from .precision import FACTORY_NAME, apply_precision

    if gpu_id >= 0:
        spacy.require_gpu(gpu_id)
    # with an explicit precision, the pipeline's own component must not apply its setting first
    exclude = [FACTORY_NAME] if precision is not None else []
    try:
        nlp = spacy.load(model, exclude=exclude)
    except (OSError, ValueError, ImportError) as e:
        raise InputError(model, None, f"cannot load the pipeline: {str(e).splitlines()[0]}") from None
    if precision is not None:
        try:
            apply_precision(nlp, precision)
        except ValueError as e:
            raise InputError(None, None, f"--precision {precision}: {e}") from None
    if max_length is not None:
        if max_length < 1:
            raise InputError(None, None, f"--max-length must be >= 1, got {max_length}")
        nlp.max_length = max_length
    return add_doc_cleaner(nlp)


def terms_function(nlp: Language) -> Callable[[Doc], List[Any]]:
    """How to read a document's distinct terms: the pipeline's `tech_terms`
    component (what `doc._.tech_terms` gives), else every entity grouped the same way."""
    for _, pipe in nlp.pipeline:
        if callable(getattr(pipe, "terms", None)) and hasattr(pipe, "attrs"):
            return pipe.terms
    from .component import collect_terms

    return lambda doc: collect_terms(doc.ents)


def doc_row(doc_id: Any, doc: Doc, terms: Callable[[Doc], List[Any]]) -> Row:
    """RETURNS (Row): id, distinct terms, entity spans (character offsets, label, text), error None."""
    return {
        "id": doc_id,
        "terms": [t.text for t in terms(doc)],
        "spans": [{"start": e.start_char, "end": e.end_char, "label": e.label_, "text": e.text} for e in doc.ents],
        "error": None,
    }


def error_row(record: Record) -> Row:
    """RETURNS (Row): id and error message; no terms, no spans."""
    return {"id": record.id, "terms": [], "spans": [], "error": record.error}


def count_words(text: Optional[str]) -> int:
    """Whitespace-separated words: the unit of every words/s figure."""
    return len(text.split()) if text else 0


class _Entity(NamedTuple):
    """An entity of a piece, with offsets into the whole text: what rows and terms read of a Span."""

    start_char: int
    end_char: int
    label_: str
    text: str


@dataclass
class _Entities:
    """The entities of a text processed in pieces, in text order: a stand-in for the Doc a terms function reads."""

    ents: List[_Entity]


def _merged_row(doc_id: Any, ents: List[_Entity], terms: Callable) -> Row:
    # the pieces come in text order, so this sort only guards; terms see every piece's mentions at once, so they
    # are deduplicated (and counted, for min_count) across pieces, first appearance first
    ents.sort(key=lambda e: (e.start_char, e.end_char))
    return doc_row(doc_id, _Entities(ents), terms)


def _pieces(record: Record, max_chars: int, max_length: int) -> List[Tuple[int, int]]:
    text = record.text
    if len(text) <= max_chars:
        return [(0, len(text))]
    pieces = split_text(text, max_chars)
    if len(text) <= max_length:  # cutting a long text is routine; only a text the pipeline refuses is news
        return pieces
    warnings.warn(LongDocumentWarning(
        f"document {record.id!r}: {len(text):,} characters is longer than nlp.max_length ({max_length:,}); "
        f"processed in {len(pieces)} pieces cut at paragraph, sentence or whitespace boundaries"), stacklevel=3)
    return pieces


def _chunks(records: Iterable[Record], max_docs: int, max_chars: int) -> Iterator[List[Record]]:
    chunk: List[Record] = []
    chars = 0
    for record in records:
        chunk.append(record)
        chars += len(record.text or "")
        if len(chunk) >= max_docs or chars >= max_chars:
            yield chunk
            chunk, chars = [], 0
    if chunk:
        yield chunk


def _piece_items(chunk: List[Record], max_chars: int, max_length: int, batch_size: int,
                 trim: Callable[[], None]) -> Iterator[Tuple[str, Tuple[int, int, bool]]]:
    """(text of a piece, (record position, piece start, last piece?)), made as the pipeline asks for them.

    The pipeline asks for the first piece of a batch once the batch before it is done, so that is when freed
    memory is handed back (`trim`): once per batch of pieces, however many pieces a document has."""
    n = 0
    for pos, record in enumerate(chunk):
        if record.error is not None:
            continue
        text = record.text
        pieces = _pieces(record, max_chars, max_length)
        for k, (start, end) in enumerate(pieces):
            if n and n % batch_size == 0:
                trim()
            n += 1
            yield (text if len(pieces) == 1 else text[start:end]), (pos, start, k == len(pieces) - 1)


def _process_chunk(nlp: Language, chunk: List[Record], terms: Callable, batch_size: int, n_process: int,
                   max_piece_chars: int, trim: Callable[[], None]) -> Iterator[Row]:
    max_chars = min(max_piece_chars, nlp.max_length)
    items = _piece_items(chunk, max_chars, nlp.max_length, batch_size, trim)
    next_pos = 0
    ents: List[_Entity] = []
    with nlp.memory_zone():
        for doc, (pos, start, last) in nlp.pipe(items, as_tuples=True, batch_size=batch_size, n_process=n_process):
            while next_pos < pos:
                yield error_row(chunk[next_pos])
                next_pos += 1
            if last and start == 0:  # the whole text in one piece
                yield doc_row(chunk[pos].id, doc, terms)
            else:
                # keep only the entities, never the pieces' Docs: memory stays bounded by one batch of pieces
                ents.extend(_Entity(e.start_char + start, e.end_char + start, e.label_, e.text) for e in doc.ents)
                if not last:
                    continue
                yield _merged_row(chunk[pos].id, ents, terms)
                ents = []
            next_pos = pos + 1
    for record in chunk[next_pos:]:
        yield error_row(record)


def _malloc_trim() -> Callable[[], None]:
    """A function that hands freed heap memory back to the system (glibc's `malloc_trim(0)`; a no-op elsewhere).

    The transformer allocates and frees tensors of a different shape for every batch; glibc keeps the freed
    blocks, fragmented, so RSS creeps up run after run (measured: +58% over 2,000 documents of 300 words)
    although nothing is held. Trimming after every batch keeps it flat for about 3% of the time (a fixed
    mmap threshold also did, for 15%).
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return lambda: None
    trim.argtypes = [ctypes.c_size_t]
    return lambda: trim(0) and None


def extract_rows(nlp: Language, records: Iterable[Record], *, batch_size: int = 64, n_process: int = 1,
                 zone_docs: int = 2000, zone_chars: int = 20_000_000,
                 max_piece_chars: int = DEFAULT_MAX_PIECE_CHARS) -> Iterator[Row]:
    """Run the pipeline over a stream of records: one row per record, in order.

    Records are taken `zone_docs` at a time (or fewer, up to `zone_chars`
    characters); each such chunk runs inside `nlp.memory_zone()`, so the
    pipeline holds on to nothing from one chunk to the next. A text longer
    than `max_piece_chars` (or `nlp.max_length`) is processed in pieces cut
    by `split_text` and comes back as one row, with the text's own offsets.

    nlp (Language): The pipeline (see `load_pipeline`; add `add_doc_cleaner` yourself otherwise).
    records (Iterable[Record]): The documents.
    batch_size (int): Documents per `nlp.pipe` batch.
    n_process (int): Worker processes (each uses one torch thread).
    zone_docs (int): Documents per memory zone (with n_process > 1, workers start once per zone).
    zone_chars (int): Characters per memory zone at most (one longer document is its own zone).
    max_piece_chars (int): The longest text the pipeline is given at once; longer texts are cut into pieces.
    RETURNS (Iterator[Row]): The rows.
    """
    if batch_size < 1 or n_process < 1 or zone_docs < 1:
        raise ValueError(f"batch_size, n_process and zone_docs must be >= 1; got {batch_size}, {n_process}, {zone_docs}")
    if max_piece_chars < 1:
        raise ValueError(f"max_piece_chars must be >= 1, got {max_piece_chars}")
    terms = terms_function(nlp)
    threads = None
    if n_process > 1:
        import torch

        # forked workers would inherit the parent's OpenMP pool and hang in their first torch op;
        # with one thread each, n_process workers share the cores without it
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
    trim = _malloc_trim()
    try:
        for chunk in _chunks(records, zone_docs, zone_chars):
            yield from _process_chunk(nlp, chunk, terms, batch_size, n_process, max_piece_chars, trim)
            trim()
    finally:
        if threads is not None:
            import torch

            torch.set_num_threads(threads)


# ---------------------------------------------------------------------------- output


def output_format(path: Union[str, Path]) -> str:
    """RETURNS (str): csv or jsonl, from the output file's suffix."""
    fmt = OUTPUT_SUFFIXES.get(Path(path).suffix.lower())
    if fmt is None:
        raise InputError(path, None, f"unknown output type {Path(path).suffix or '(no suffix)'!r}: use .csv or .jsonl")
    return fmt


def check_paths(output: Union[str, Path], sources: Sequence[Source]) -> None:
    """Refuse an output (or its partial file) that is an input, or that cannot be written: one clear line, before any work."""
    output = Path(output)
    output_format(output)
    files = [f for s in sources for f in ([p for p, _ in s.files] if s.kind == "txt" else [s.path] if s.path else [])]
    same_file(output, files)
    same_file(partial_path(output), files)
    check_output(output)


def partial_path(output: Union[str, Path]) -> Path:
    """RETURNS (Path): Where a run writes before renaming to `output`: OUTPUT.partial."""
    output = Path(output)
    return output.with_name(output.name + PARTIAL_SUFFIX)


def _one_line(value: Any) -> str:
    # every CSV row stays one physical line, so a partial file's complete rows are its complete lines
    return " ".join(str(value).splitlines()) if value is not None else ""


class RowWriter:
    """Writes rows to an open text file, flushing each one."""

    def __init__(self, f: TextIO):
        self.f = f

    def write_header(self) -> None:
        pass

    def write(self, row: Row) -> None:
        raise NotImplementedError


class JsonlRowWriter(RowWriter):
    """`{"id": ..., "terms": [...], "spans": [{"start", "end", "label", "text"}], "error": null}` per line."""

    def write(self, row: Row) -> None:
        self.f.write(json.dumps(row, ensure_ascii=False) + "\n")
        self.f.flush()


class CsvRowWriter(RowWriter):
    """Columns id, terms (JSON list), spans (JSON list of objects), error (empty when none)."""

    def __init__(self, f: TextIO):
        super().__init__(f)
        self.csv = csv.writer(f, lineterminator="\n")

    def write_header(self) -> None:
        self.csv.writerow(CSV_HEADER)
        self.f.flush()

    def write(self, row: Row) -> None:
        self.csv.writerow([_one_line(row["id"]), json.dumps(row["terms"], ensure_ascii=False),
                           json.dumps(row["spans"], ensure_ascii=False), _one_line(row["error"])])
        self.f.flush()


WRITERS = {"csv": CsvRowWriter, "jsonl": JsonlRowWriter}


def read_partial(path: Path, fmt: str) -> Tuple[int, Optional[str]]:
    """Count the complete rows of a partial output and drop a trailing incomplete line (in place).

    path (Path): The partial file.
    fmt (str): csv or jsonl.
    RETURNS (Tuple[int, Optional[str]]): Complete rows, and the id of the last one as a string.
    """
    lines = 0
    end = 0  # byte offset just after the last newline
    pos = 0
    current = bytearray()  # the line being read
    last_line = b""
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            start = 0
            while True:
                nl = block.find(b"\n", start)
                if nl < 0:
                    current += block[start:]
                    break
                current += block[start:nl]
                last_line, current = bytes(current), bytearray()
                lines += 1
                end = pos + nl + 1
                start = nl + 1
            pos += len(block)
    tail = bool(current)
    if tail:
        with open(path, "r+b") as f:
            f.truncate(end)
    if fmt == "csv":
        if lines == 0:
            return 0, None
        with open(path, "r", encoding="utf-8", newline="") as f:
            header = next(csv.reader([f.readline()]), [])
        if tuple(header) != CSV_HEADER:
            raise InputError(path, 1, f"not a partial output of this command (header {header}): delete it or run without --resume")
        rows = lines - 1
        if rows == 0:
            return 0, None
        return rows, next(csv.reader([last_line.decode("utf-8")]))[0]
    if lines == 0:
        return 0, None
    try:
        last = json.loads(last_line.decode("utf-8"))
        return lines, str(last["id"])
    except (ValueError, KeyError, TypeError) as e:
        raise InputError(path, lines, f"not a partial output of this command ({e}): delete it or run without --resume") from None


# ---------------------------------------------------------------------------- the whole run


@dataclass
class ExtractStats:
    """What a run did.

    rows (int): Rows written by this run. resumed (int): Rows already in the partial file.
    errors (int): Error rows written. error_examples (List[str]): The first error messages.
    words (int): Words of the documents processed (whitespace-separated). seconds (float): Time spent.
    """

    rows: int = 0
    resumed: int = 0
    errors: int = 0
    error_examples: List[str] = field(default_factory=list)
    words: int = 0
    seconds: float = 0.0
    output: Optional[Path] = None

    @property
    def docs_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    @property
    def words_per_s(self) -> float:
        return self.words / self.seconds if self.seconds else 0.0


def _skip_done(records: Iterator[Record], done: int, last_id: Optional[str], partial: Path) -> Iterator[Record]:
    last = None
    for last in itertools.islice(records, done):
        pass
    if done and (last is None or last.index != done - 1):
        have = 0 if last is None else last.index + 1
        raise InputError(partial, None, f"has {done} rows but the inputs have only {have} documents: "
                                        "delete it or run without --resume")
    if done and last_id is not None and str(last.id) != last_id:
        raise InputError(partial, None, f"does not match the inputs: its row {done} has id {last_id!r}, but input "
                                        f"document {done} has id {str(last.id)!r}: delete it or run without --resume")
    return records


def extract(nlp: Language, inputs: Sequence[Union[str, Path]], output: Union[str, Path], *, text_field: str = "text",
            id_field: str = "id", batch_size: int = 64, n_process: int = 1, strict: bool = False,
            resume: bool = False, zone_docs: int = 2000, max_piece_chars: int = DEFAULT_MAX_PIECE_CHARS,
            stdin: Optional[TextIO] = None,
            on_row: Optional[Callable[[Row, int], None]] = None, keep_errors: int = 20) -> ExtractStats:
    """Write one row per input document to `output` (CSV or JSONL by suffix), in input order.

    nlp (Language): The pipeline, e.g. from `load_pipeline`.
    inputs (Sequence[Union[str, Path]]): .txt files or folders, .jsonl, .csv, or "-" for stdin.
    output (Union[str, Path]): X.csv or X.jsonl; written as X.partial first, renamed at the end.
    text_field (str): JSONL field / CSV column with the text. id_field (str): with the id.
    batch_size (int): Documents per `nlp.pipe` batch. n_process (int): Worker processes.
    strict (bool): Stop at the first malformed input (InputError; no output file) instead of writing an error row.
    resume (bool): Continue from an existing X.partial.
    zone_docs (int): Documents per memory zone (see `extract_rows`).
    max_piece_chars (int): Longer texts are processed in pieces of at most this many characters (see `extract_rows`).
    stdin (Optional[TextIO]): The stream for "-".
    on_row (Optional[Callable[[Row, int], None]]): Called after each row is written, with the row and its words.
    keep_errors (int): How many error messages to keep in the stats.
    RETURNS (ExtractStats): What was written.
    """
    output = Path(output)
    fmt = output_format(output)
    sources = resolve_inputs(inputs, text_field=text_field)
    check_paths(output, sources)
    partial = partial_path(output)
    done, last_id = (read_partial(partial, fmt) if resume and partial.exists() else (0, None))
    records = iter_records(sources, text_field=text_field, id_field=id_field, skip=done, stdin=stdin)
    records = _skip_done(records, done, last_id, partial)
    stats = ExtractStats(resumed=done, output=output)
    words: Dict[int, int] = {}

    def counted(stream: Iterator[Record]) -> Iterator[Record]:
        for record in stream:
            if record.error is not None and strict:
                raise InputError(None, None, f"{record.error} (strict mode: no output was written)")
            words[record.index] = count_words(record.text)
            yield record

    output.parent.mkdir(parents=True, exist_ok=True)
    appending = done > 0
    f = open(partial, "a" if appending else "w", encoding="utf-8", newline="")
    t0 = time.perf_counter()
    try:
        writer = WRITERS[fmt](f)
        if not appending:
            writer.write_header()
        index = done
        for row in extract_rows(nlp, counted(records), batch_size=batch_size, n_process=n_process, zone_docs=zone_docs,
                                max_piece_chars=max_piece_chars):
            writer.write(row)
            n_words = words.pop(index, 0)
            index += 1
            stats.rows += 1
            stats.words += n_words
            if row["error"] is not None:
                stats.errors += 1
                if len(stats.error_examples) < keep_errors:
                    stats.error_examples.append(row["error"])
            if on_row is not None:
                on_row(row, n_words)
    except InputError:
        f.close()
        if not appending:  # nothing of this run is kept; a resumed partial keeps its earlier rows
            partial.unlink(missing_ok=True)
        raise
    except BaseException:
        f.close()  # the partial file stays for --resume
        raise
    f.close()
    os.replace(partial, output)
    stats.seconds = time.perf_counter() - t0
    return stats
