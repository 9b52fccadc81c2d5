"""Input documents for extraction, streamed: `.txt` files or folders of them (one document per file, id = path
relative to the folder), `.jsonl` (a text field per line), `.csv` (a text column) or stdin (one document per line).
A malformed line or row becomes a Record with an error, so every input document gives one output row."""

import itertools
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, List, Optional, Sequence, TextIO, Tuple, Union


from ..files.problems import SHOWN_CHARS, InputError, format_problem, printable
from ..files.textfile import (
    CsvRecord,
    Line,
    csv_records,
    decode_lines,
    invalid_at,
    json_text_problem,
    pick_codec,
    text_problem,
)

STDIN = "-"
INPUT_SUFFIXES = {".txt": "txt", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}


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
            raise InputError(
                path,
                None,
                f"unknown input type {path.suffix or '(no suffix)'!r}: expected .txt, .jsonl or "
                ".csv files, folders of .txt files, or - for stdin",
            )
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
        raise InputError(
            path,
            line,
            f"no {text_field!r} column in the header (columns: {printable(', '.join(columns), SHOWN_CHARS)}): "
            "name the text column with --text-field",
        )
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
        line = data[skip : skip + e.start].decode(codec, errors="replace").count("\n") + 1
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


def _file(source: Source) -> Path:
    if source.path is None:
        raise ValueError(f"a {source.kind} input has a path")  # resolve_inputs gives every file input one
    return source.path


def _read_jsonl(source: Source, index: Iterator[int], text_field: str, id_field: str) -> Iterator[Record]:
    with open(_file(source), "rb") as f:
        yield from jsonl_records(decode_lines(f), source.name, index, text_field=text_field, id_field=id_field)


def jsonl_records(
    lines: Iterable[Line], name: str, index: Iterator[int], *, text_field: str = "text", id_field: str = "id"
) -> Iterator[Record]:
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
            yield Record(
                i,
                doc_id,
                error=_where(
                    name, n, f"no {text_field!r} field (fields: {fields}): name the text field with --text-field"
                ),
            )
            continue
        text = obj[text_field]
        if not isinstance(text, str):
            yield Record(
                i, doc_id, error=_where(name, n, f"field {text_field!r} is {type(text).__name__}, not a string")
            )
            continue
        yield Record(i, doc_id, text)


def _read_csv(source: Source, index: Iterator[int], text_field: str, id_field: str) -> Iterator[Record]:
    """One record per CSV row, read by `textfile.csv_records` (a stray quote costs its own line, not the rows after it)."""
    with open(_file(source), "rb") as f:
        records = csv_records(decode_lines(f))
        header, _ = csv_header(_file(source), records)
        yield from csv_rows(records, header, source.name, index, text_field=text_field, id_field=id_field)


def csv_rows(
    records: Iterable[CsvRecord],
    header: Sequence[str],
    name: str,
    index: Iterator[int],
    *,
    text_field: str = "text",
    id_field: str = "id",
    row_number: int = 0,
) -> Iterator[Record]:
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
            yield Record(
                i,
                doc_id,
                error=_where(
                    name,
                    record.line,
                    f"malformed CSV row: expected {len(header)} "
                    f"fields ({printable(', '.join(header), SHOWN_CHARS)}), found {len(row)}",
                ),
            )
        else:
            bad = next((c for c in (text_col, id_col) if c is not None and text_problem(row[c])), None)
            if bad is not None:
                yield Record(
                    i, doc_id, error=_where(name, record.line, f"column {header[bad]!r} holds {text_problem(row[bad])}")
                )
            else:
                yield Record(i, doc_id, row[text_col])


def _read_stdin(index: Iterator[int], stream: Optional[TextIO]) -> Iterator[Record]:
    stream = sys.stdin if stream is None else stream
    binary = getattr(stream, "buffer", None)
    lines: Iterable[Line]
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


def iter_records(
    sources: Sequence[Source],
    *,
    text_field: str = "text",
    id_field: str = "id",
    skip: int = 0,
    stdin: Optional[TextIO] = None,
) -> Iterator[Record]:
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
