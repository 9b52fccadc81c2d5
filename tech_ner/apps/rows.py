"""Output rows of extraction: one per input document (terms, spans, or the error), written as CSV or JSONL and
flushed one by one into OUTPUT.partial, which a resumed run reads back."""

import csv
import json
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, TextIO, Tuple, Union


from ..files.problems import InputError, check_output, same_file

from .records import Record, Source

OUTPUT_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
CSV_HEADER = ("id", "terms", "spans", "error")
PARTIAL_SUFFIX = ".partial"
Row = Dict[str, Any]


def doc_row(doc_id: Any, doc: Any, terms: Callable[[Any], List[Any]]) -> Row:
    """doc (Doc or inference.Entities): the document, or the entities of its pieces.
    RETURNS (Row): id, distinct terms, entity spans (character offsets, label, text), error None."""
    return {
        "id": doc_id,
        "terms": [t.text for t in terms(doc)],
        "spans": [{"start": e.start_char, "end": e.end_char, "label": e.label_, "text": e.text} for e in doc.ents],
        "error": None,
    }


def error_row(record: Record) -> Row:
    """RETURNS (Row): id and error message; no terms, no spans."""
    return {"id": record.id, "terms": [], "spans": [], "error": record.error}


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
        self.csv.writerow(
            [
                _one_line(row["id"]),
                json.dumps(row["terms"], ensure_ascii=False),
                json.dumps(row["spans"], ensure_ascii=False),
                _one_line(row["error"]),
            ]
        )
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
            raise InputError(
                path, 1, f"not a partial output of this command (header {header}): delete it or run without --resume"
            )
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
        raise InputError(
            path, lines, f"not a partial output of this command ({e}): delete it or run without --resume"
        ) from None
