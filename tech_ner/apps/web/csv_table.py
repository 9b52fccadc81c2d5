"""A CSV upload as a table of rows (an error row where a line cannot be read), and the table written back with
a `tech_terms` column."""

import codecs
import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple


from ...files.textfile import decode_lines
from .settings import ServeError

TERMS_COLUMN = "tech_terms"
CSV_DELIMITERS = (",", ";", "\t", "|")


@dataclass
class CsvTable:
    """A parsed CSV upload: every data line is in exactly one row (good or error) or is a blank line.

    header (List[str]): The column names.
    rows (List[List[str]]): The data rows, each as long as the header; an error row holds what could be read.
    errors (List[Optional[str]]): Per row, None or `CSV line N: what is wrong`.
    lines (List[Tuple[int, int]]): Per row, its first and last physical line (1-based; the header is line 1).
    text_index (int): The position of the text column.
    delimiter (str): The delimiter found in the header.
    lineterminator (str): "\\r\\n", "\\n" or "\\r", as in the upload.
    bom (bool): Whether the upload started with a UTF-8 byte order mark.
    blank_lines (int): Blank lines skipped.
    """

    header: List[str]
    rows: List[List[str]]
    text_index: int
    errors: List[Optional[str]] = field(default_factory=list)
    lines: List[Tuple[int, int]] = field(default_factory=list)
    delimiter: str = ","
    lineterminator: str = "\r\n"
    bom: bool = False
    blank_lines: int = 0

    def __post_init__(self):
        self.errors = self.errors or [None] * len(self.rows)


@dataclass
class CsvRecord:
    """One CSV record read from physical lines, or the error that stands in for one line.

    first_line (int): Its first physical line (1-based).
    last_line (int): Its last physical line; a quoted field with line breaks spans several.
    fields (List[str]): The fields; for an error, those of the line read alone, as far as they go.
    error (Optional[str]): What is wrong, without the line number; None for a good record.
    """

    first_line: int
    last_line: int
    fields: List[str]
    error: Optional[str] = None


def upload_lines(data: bytes) -> Tuple[List[Optional[str]], bool]:
    """The upload's physical lines, each decoded alone by `files.textfile.decode_lines` (a byte-order mark, else
    UTF-8; line ends \\r\\n, \\n or a lone \\r), or as Windows-1252 when the file is not UTF-8 and no line of it is
    non-ASCII UTF-8 (a spreadsheet export on Windows). A line that does not decode is None, so it costs one error row,
    not the file.

    RETURNS (Tuple[List[Optional[str]], bool]): The lines, each with its line end, and whether the upload began with a
        byte-order mark.
    """
    lines = decode_lines(io.BytesIO(data))
    read = list(lines)
    if lines.codec == "utf-8" and any(line.error for line in read):
        if not any(line.error is None and not line.text.isascii() for line in read):
            read = list(decode_lines(io.BytesIO(data[lines.skip :]), "cp1252"))
    return [None if line.error else line.text + line.end for line in read], lines.bom is not None


def csv_records(
    lines: Sequence[Optional[str]], *, delimiter: str, n_fields: int, first_line: int = 2
) -> Iterator[CsvRecord]:
    """Read CSV records from decoded physical lines, never merging rows: rows in = rows out + error rows.

    A record is read with the csv module (strict quoting) from one line on. It is an error that costs only
    that line, and reading resumes on the next line, when the line did not decode (None) or holds a NUL, when
    the quoting is malformed or never closed, or when a quoted field spans lines of which one looks like a row
    of its own (as many fields as the header, and a first field of the same kind: a number or an id), or when
    it gives more fields than the header. A one-line record with more fields than the header is an error row
    too. Blank lines are skipped.

    The lines are decoded as `tech-ner extract` decodes its files (`upload_lines`), but the record rule is not
    `files.textfile.csv_records`, and cannot simply be: this table keeps a short row (padded) and each cell's own
    line ends (it is written back), and calls a quoted field that runs over a line looking like a row of its own
    an error even where the csv module reads it cleanly, which extract's rule (exactly the header's fields, valid
    CSV read as written) would accept as one row.

    lines (Sequence[Optional[str]]): The data lines, each with its line end; None for one that did not decode.
    delimiter (str): The delimiter.
    n_fields (int): The number of columns in the header.
    first_line (int): The line number of `lines[0]`.
    YIELDS (CsvRecord): The records and error rows, in order.
    """

    def lines_from(start: int) -> Iterator[str]:
        for k in range(start, len(lines)):
            line = lines[k]
            if line is None or "\x00" in line:  # a quoted field does not run on into such a line
                return
            yield line

    i = 0
    while i < len(lines):
        line, number = lines[i], first_line + i
        if line is None:
            yield CsvRecord(number, number, [], "not valid UTF-8 (nor Windows-1252) text")
            i += 1
            continue
        if not line.strip("\r\n"):
            i += 1
            continue
        if "\x00" in line:
            yield CsvRecord(number, number, _fields_alone(line, delimiter), "contains NUL bytes")
            i += 1
            continue
        reader = csv.reader(lines_from(i), delimiter=delimiter, strict=True)
        try:
            fields = next(reader)
        except csv.Error as e:
            if "field limit" in str(e):
                problem = f"a field is longer than the server's limit ({e}; --max-text-chars)"
            elif "unexpected end of data" in str(e):
                problem = (
                    'a quoted field opened on this line is never closed: close it, or double a quote inside it ("")'
                )
            else:
                problem = f"malformed quoting on line {number + reader.line_num - 1} ({e})"
            yield CsvRecord(number, number, _fields_alone(line, delimiter), problem)
            i += 1
            continue
        used = reader.line_num
        swallowed = next(
            (k for k in range(i + 1, i + used) if _looks_like_a_row(lines[k], line, delimiter, n_fields)), None
        )
        if swallowed is not None:
            yield CsvRecord(
                number,
                number,
                _fields_alone(line, delimiter),
                f"a quoted field opened on this line runs over line {first_line + swallowed}, which looks "
                'like a row of its own: close the quote, or double a quote inside it ("")',
            )
            i += 1
            continue
        if len(fields) > n_fields and used > 1:  # a quote that ran over lines into too many fields was stray
            yield CsvRecord(
                number,
                number,
                _fields_alone(line, delimiter),
                f"a quoted field opened on this line runs over {used - 1} more line(s) into "
                f"{len(fields)} fields, but the header has {n_fields}: close the quote, or double a "
                'quote inside it ("")',
            )
            i += 1
            continue
        error = f"{len(fields)} fields, but the header has {n_fields}" if len(fields) > n_fields else None
        yield CsvRecord(number, number + used - 1, fields, error)
        i += used


def _fields_alone(line: str, delimiter: str) -> List[str]:
    """The fields of one line read on its own (lenient), to show in its error row."""
    try:
        return next(csv.reader([line.rstrip("\r\n")], delimiter=delimiter), [])
    except csv.Error:
        return [line.rstrip("\r\n")]


def _id_kind(value: str) -> Optional[str]:
    """ "number", "id" (a token with a digit), or None for free text: what a row's first field looks like."""
    value = value.strip()
    if value.isdigit():
        return "number"
    token = value and len(value) <= 64 and not any(c.isspace() or c == '"' for c in value)
    if token and any(c.isdigit() for c in value):
        return "id"
    return None


def _looks_like_a_row(line: Optional[str], start: str, delimiter: str, n_fields: int) -> bool:
    """Whether a line inside a multi-line quoted field looks like a row of its own, one a stray quote swallowed."""
    if line is None or n_fields < 2:
        return False
    fields, first = _fields_alone(line, delimiter), _fields_alone(start, delimiter)
    kind = _id_kind(first[0]) if first else None
    return len(fields) == n_fields and kind is not None and _id_kind(fields[0]) == kind


def read_csv(data: bytes, *, column: str = "text", max_rows: int = 10_000, max_text_chars: int = 500_000) -> CsvTable:
    """Parse a CSV upload that has a text column; the delimiter (, ; tab |) is the one that finds the column.

    A malformed or undecodable row becomes an error row naming its line (see `csv_records`); the header must
    be sound.

    data (bytes): The file.
    column (str): The name of the text column (exact, else ignoring case and surrounding spaces).
    max_rows (int): The most data rows.
    max_text_chars (int): The most characters in one text cell.
    RETURNS (CsvTable): The table.
    Raises ServeError: 400 no such column, 413 too many rows or a cell too long, 422 an unreadable header.
    """
    lines, bom = upload_lines(data)
    header_line = lines[0] if lines else ""
    if header_line is None:
        raise ServeError(422, "CSV line 1 (the header) is neither UTF-8 nor Windows-1252 text")
    if not header_line.strip():
        raise ServeError(400, f"the CSV file has no header row; it needs a {column!r} column")
    if "\x00" in header_line:
        raise ServeError(422, "the CSV file contains NUL bytes in its header: is it a binary file?")
    first_line = header_line.rstrip("\r\n")
    wanted = column.strip().casefold()
    delimiter, index, header = ",", -1, _fields_alone(first_line, ",")
    for candidate in CSV_DELIMITERS:
        fields = _fields_alone(first_line, candidate)
        names = [f.strip() for f in fields]
        if column in fields or column in names:
            delimiter, header, index = candidate, fields, names.index(column.strip())
            break
        folded = [n.casefold() for n in names]
        if wanted in folded and index < 0:
            delimiter, header, index = candidate, fields, folded.index(wanted)
    if index < 0:
        shown = ", ".join(repr(h) for h in header[:20])
        raise ServeError(400, f"the CSV has no {column!r} column; its header has {shown}")
    try:
        header = next(csv.reader([first_line], delimiter=delimiter, strict=True))
    except csv.Error as e:
        raise ServeError(422, f"CSV line 1 (the header): {e}")
    # a long text cell is legal CSV; raise the csv module's per-field limit (a process-wide setting) to fit it
    if csv.field_size_limit() < max_text_chars + 1:
        csv.field_size_limit(max_text_chars + 1)
    table = CsvTable(
        header=header,
        rows=[],
        text_index=index,
        delimiter=delimiter,
        bom=bom,
        lineterminator=header_line[len(first_line) :] or "\n",
    )
    for record in csv_records(lines[1:], delimiter=delimiter, n_fields=len(header)):
        if len(table.rows) >= max_rows:
            raise ServeError(413, f"the CSV has more than {max_rows} rows (the server's --max-csv-rows)")
        row = (record.fields + [""] * len(header))[: len(header)]
        if record.error is None and len(row[index]) > max_text_chars:
            raise ServeError(
                413,
                f"CSV line {record.first_line}: the text has {len(row[index])} characters; "
                f"the limit is {max_text_chars} (--max-text-chars)",
            )
        table.rows.append(row)
        table.errors.append(None if record.error is None else f"CSV line {record.first_line}: {record.error}")
        table.lines.append((record.first_line, record.last_line))
    used = sum(last - first + 1 for first, last in table.lines)
    table.blank_lines = len(lines) - 1 - used
    return table


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(cell: str) -> str:
    """A cell a spreadsheet would not run as a formula: one starting with = + - @ tab or CR gets a leading
    single quote (OWASP's advice on CSV injection); a plain number such as -5 is data and stays."""
    if not cell.startswith(FORMULA_STARTS):
        return cell
    try:
        float(cell)
        return cell
    except ValueError:
        return "'" + cell


ERROR_COLUMN = f"{TERMS_COLUMN}_error"


def write_csv(table: CsvTable, cells: Sequence[str], stats: Optional[Dict[str, int]] = None) -> bytes:
    """The table with a `tech_terms` column (added last, or filled in if the upload has one already) and, if any
    row is an error row, a `tech_terms_error` column with its message. Every cell that a spreadsheet would run
    as a formula is neutralised (`neutralise_cell`).

    table (CsvTable): The upload.
    cells (Sequence[str]): The terms of each row, joined with "; " (ignored for error rows).
    stats (Optional[Dict[str, int]]): If given, gets "neutralised": the number of cells changed.
    RETURNS (bytes): The CSV, UTF-8 (with a byte order mark if the upload had one).
    """
    header = list(table.header)
    names = [h.strip() for h in header]
    if TERMS_COLUMN in names:
        at = names.index(TERMS_COLUMN)
    else:
        at = len(header)
        header.append(TERMS_COLUMN)
    with_errors = any(table.errors)
    if with_errors:
        header.append(ERROR_COLUMN)
    out = io.StringIO()
    writer = csv.writer(out, delimiter=table.delimiter, lineterminator=table.lineterminator)
    # the csv module quotes a field for the characters of its own line end only: a lone "\r" in a "\n" file
    # would go out bare and split the row when read back, so such a row is written with every field quoted
    quote_all = csv.writer(out, delimiter=table.delimiter, lineterminator=table.lineterminator, quoting=csv.QUOTE_ALL)
    changed = 0

    def write(row: List[str]) -> None:
        nonlocal changed
        safe = [neutralise_cell(c) for c in row]
        changed += sum(x != y for x, y in zip(safe, row))
        bare_break = any(ch in c and ch not in table.lineterminator for c in safe for ch in "\r\n")
        (quote_all if bare_break else writer).writerow(safe)

    write(header)
    for row, cell, error in zip(table.rows, cells, table.errors):
        row = list(row)
        cell = "" if error else cell
        if at == len(row):
            row.append(cell)
        else:
            row[at] = cell
        if with_errors:
            row.append(error or "")
        write(row)
    if stats is not None:
        stats["neutralised"] = changed
    data = out.getvalue().encode("utf-8")
    return codecs.BOM_UTF8 + data if table.bom else data


def download_name(filename: Optional[str]) -> str:
    stem = Path(filename or "").stem
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "texts"
    return f"{stem}.{TERMS_COLUMN}.csv"
