"""Text files read line by line, whatever their encoding and line ends, with every physical line accounted for.

`decode_lines` picks the encoding (a byte-order mark, else UTF-8 or the one given), splits on `\\r\\n`, `\\n` and
a lone `\\r`, and decodes one line at a time: a byte that does not decode marks its own line as bad (`Line.error`),
so one bad byte costs one line (a counted skip or an error row), never the file, and never turns the file into
mojibake. `csv_records` groups those lines into CSV records by the rule in its docstring, so a stray quote cannot
silently swallow the rows after it. `text_problem` and `json_text_problem` find text that no UTF-8 output can
hold (a lone surrogate) or that marks binary data (a NUL character).
"""

import codecs
import csv
import json
import re
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Deque, Iterable, Iterator, List, Optional, Tuple

from .problems import InputError

CHUNK = 1 << 16
# checked in this order: the UTF-32-LE mark begins with the UTF-16-LE one
BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
MAX_RECORD_LINES = 10_000
_EOL = re.compile(r"\r\n|\r|\n")
_SURROGATE = re.compile("[\ud800-\udfff]")
_INVALID = re.compile("[\x00\ud800-\udfff]")
_MARK = "tech_ner.mark"


def _mark_bytes(error: UnicodeError):
    # like surrogateescape, but for every byte (a UTF-16 stream's stray byte may be below 0x80): U+DC00 + byte.
    # No strict decoder ever yields a lone surrogate, so one in decoded text always means an undecodable byte.
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return "".join(chr(0xDC00 + b) for b in error.object[error.start : error.end]), error.end


codecs.register_error(_MARK, _mark_bytes)


def check_encoding(encoding: str) -> str:
    """RETURNS (str): The codec's canonical name ("auto" stays "auto"). Raises InputError for an unknown one."""
    if encoding == "auto":
        return encoding
    try:
        info = codecs.lookup(encoding)
    except LookupError:
        raise InputError(
            None,
            None,
            f"--encoding {encoding!r}: unknown encoding; use auto, utf-8, cp1252, "
            "latin-1, utf-16 or another Python codec name",
        ) from None
    if not getattr(info, "_is_text_encoding", True):
        raise InputError(
            None, None, f"--encoding {encoding!r} is not a text encoding; use auto, utf-8, cp1252 or utf-16"
        )
    return info.name


def pick_codec(head: bytes, encoding: str = "auto") -> Tuple[str, int, Optional[str]]:
    """Which codec decodes a stream that starts with `head`.

    RETURNS (Tuple[str, int, Optional[str]]): codec, bytes of byte-order mark to drop, and the mark's
        encoding (utf-8, utf-16, utf-32) or None.
    """
    encoding = check_encoding(encoding)
    bom = next((name for mark, name in BOMS if head.startswith(mark)), None)
    if encoding == "auto":
        if bom is None:
            return "utf-8", 0, None
        return bom, 3 if bom == "utf-8" else 0, bom  # the UTF-16/32 codecs read their own mark
    if encoding in ("utf-8", "utf-8-sig"):
        return "utf-8", 3 if bom == "utf-8" else 0, "utf-8" if bom == "utf-8" else None
    return encoding, 0, bom if bom is not None and encoding.startswith(bom) else None


@dataclass
class Line:
    """One physical line.

    number (int): From 1.
    text (str): Without its line end; a byte that did not decode is U+DC00 + the byte.
    error (Optional[str]): Why the line does not decode, or None.
    end (str): Its line end as read ("\\r\\n", "\\n" or "\\r"; "" for a last line without one).
    """

    number: int
    text: str
    error: Optional[str] = None
    end: str = ""


class TextLines:
    """The lines of a binary stream, decoded one at a time (iterate it once).

    f (BinaryIO): The stream.
    encoding (str): auto (a byte-order mark, else UTF-8) or a codec name.
    """

    def __init__(self, f: BinaryIO, encoding: str = "auto"):
        self.f = f
        # four bytes tell any byte-order mark; after them, read what a pipe has (stdin) rather than wait for a chunk
        self.head = f.read(4)
        self.read = getattr(f, "read1", f.read)
        self.codec, self.skip, self.bom = pick_codec(self.head, encoding)
        self.label = "UTF-8" if self.codec == "utf-8" else self.codec

    def _line(self, number: int, text: str, end: str) -> Line:
        m = _SURROGATE.search(text)
        if m is None:
            return Line(number, text, None, end)
        byte = ord(m.group()) - 0xDC00
        return Line(
            number, text, f"not valid {self.label} at character {m.start() + 1} of the line (byte 0x{byte:02X})", end
        )

    def __iter__(self) -> Iterator[Line]:
        decoder = codecs.getincrementaldecoder(self.codec)(errors=_MARK)
        data = self.head[self.skip :]
        parts: List[str] = []  # the line being read, in pieces (a line may span many chunks)
        held = ""  # a "\r" at the end of a chunk: the next chunk may begin with its "\n"
        number = 0
        while True:
            final = not data
            text = held + decoder.decode(data, final=final)
            held = ""
            if text.endswith("\r") and not final:
                text, held = text[:-1], "\r"
            pos = 0
            for m in _EOL.finditer(text):
                parts.append(text[pos : m.start()])
                number += 1
                yield self._line(number, "".join(parts), m.group())
                parts, pos = [], m.end()
            if pos < len(text):
                parts.append(text[pos:])
            if final:
                break
            data = self.read(CHUNK)
        if parts:
            yield self._line(number + 1, "".join(parts), "")


def decode_lines(f: BinaryIO, encoding: str = "auto") -> TextLines:
    """RETURNS (TextLines): The lines of `f` (see TextLines); `.codec` and `.bom` say how it was read."""
    return TextLines(f, encoding)


def invalid_at(text: str) -> Optional[int]:
    """RETURNS (Optional[int]): Where `text` holds its first invalid character (see text_problem), or None."""
    m = _INVALID.search(text)
    return None if m is None else m.start()


def text_problem(text: str) -> Optional[str]:
    """RETURNS (Optional[str]): What makes `text` invalid (a lone surrogate or a NUL character), or None."""
    m = _INVALID.search(text)
    if m is None:
        return None
    c = m.group()
    if c == "\x00":
        return f"a NUL character at character {m.start() + 1}"
    return f"a lone surrogate U+{ord(c):04X} at character {m.start() + 1} (no UTF-8 text can hold one)"


def json_text_problem(value, name: str = "") -> Optional[Tuple[str, str]]:
    """The first invalid string (see text_problem) in a parsed JSON value, keys included.

    RETURNS (Optional[Tuple[str, str]]): ("field 'a.b[0]'" or "a field name in ...", the problem), or None.
    """
    stack = [(name, value)]
    while stack:  # not recursive: json nests deeper than Python's recursion limit allows here
        path, v = stack.pop()
        if isinstance(v, str):
            problem = text_problem(v)
            if problem:
                return (f"field {path!r}" if path else "the value"), problem
        elif isinstance(v, dict):
            for k, item in reversed(list(v.items())):
                problem = text_problem(k)
                if problem:
                    return (f"a field name in {path!r}" if path else "a field name"), problem
                stack.append((f"{path}.{k}" if path else k, item))
        elif isinstance(v, list):
            stack.extend((f"{path}[{i}]", item) for i, item in reversed(list(enumerate(v))))
    return None


@dataclass
class CsvRecord:
    """One CSV record, or one physical line that is none.

    line (int): Its first physical line. end_line (int): Its last.
    fields (List[str]): The fields ([] for a blank line, or for a line that is no record).
    error (Optional[str]): Why it cannot be used: malformed quoting, or a line that does not decode.
    error_line (int): The line the error is on.
    """

    line: int
    end_line: int
    fields: List[str] = field(default_factory=list)
    error: Optional[str] = None
    error_line: int = 0


def csv_records(
    lines: Iterable[Line], *, delimiter: str = ",", width: Optional[int] = None, max_lines: int = MAX_RECORD_LINES
) -> Iterator[CsvRecord]:
    """Group physical lines into CSV records, so that every line is in exactly one record or error record.

    The rule: a record is one line, unless a quoted field holds line breaks. Such a record spanning several
    lines is accepted only when it is well-formed (every closing quote is followed by the delimiter or the
    line's end), closes within `max_lines` lines, and has exactly the header's number of fields. Otherwise
    the quote was stray: its line alone becomes an error record, and reading starts again at the next
    physical line, so the rows after a stray quote stay rows.

    lines (Iterable[Line]): From decode_lines.
    delimiter (str): The field separator.
    width (Optional[int]): Fields per record; None takes the first non-blank record's (the header's).
    max_lines (int): The most lines one quoted field may span.
    RETURNS (Iterator[CsvRecord]): In file order.
    """
    # a text in one cell may be far longer than the csv module's default limit of 131,072 characters
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    source = iter(lines)
    pending: Deque[Line] = deque()
    while True:
        if not pending:
            line = next(source, None)
            if line is None:
                return
            pending.append(line)
        first = pending[0]
        if '"' not in first.text:  # the common case: one line, no quoting, exactly what csv would read
            pending.popleft()
            fields = first.text.split(delimiter) if first.text else []
            if width is None and fields:
                width = len(fields)
            yield CsvRecord(first.number, first.number, fields, first.error, first.number)
            continue
        used = 0

        def feed() -> Iterator[str]:
            nonlocal used
            while used < max_lines:
                if used == len(pending):
                    line = next(source, None)
                    if line is None:
                        return
                    pending.append(line)
                used += 1
                yield pending[used - 1].text + "\n"

        reason = None
        try:
            fields = next(csv.reader(feed(), delimiter=delimiter, strict=True), [])
        except csv.Error as e:
            fields, last = [], pending[used - 1].number
            if "unexpected end of data" in str(e):
                reason = (
                    f"never closes (read to line {last})" if used < max_lines else f"is still open after {used} lines"
                )
            else:
                reason = f"breaks on line {last} ({e})"
        if reason is None and used > 1 and width is not None and len(fields) != width:
            reason = f"closes on line {pending[used - 1].number} with {len(fields)} fields where the header has {width}"
        if reason is not None:
            pending.popleft()
            if used == 1:
                message = f'malformed CSV: a quoted field {reason}; write a quote inside a field as ""'
            else:
                message = (
                    f"malformed CSV: a quoted field opens on this line but {reason}: a stray quote? "
                    'The lines after it are read as rows of their own; write a quote inside a field as ""'
                )
            yield CsvRecord(first.number, first.number, [], message, first.number)
            continue
        record = [pending.popleft() for _ in range(used)]
        if width is None and fields:
            width = len(fields)
        bad = next((l for l in record if l.error), None)
        yield CsvRecord(
            first.number, record[-1].number, fields, bad.error if bad else None, bad.number if bad else first.number
        )


def read_user_text(path: Path, what: str) -> str:
    """The text of a small file a user named by an option (UTF-8, a byte-order mark dropped).

    what (str): The file as the messages name it, e.g. "label map" or "--tag-names file".
    RETURNS (str): The text. Raises InputError naming the file if it is missing or not UTF-8.
    """
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(path, None, f"{what} not found") from None
    except UnicodeDecodeError as e:
        raise InputError(path, None, f"{what} is not valid UTF-8 ({e.reason} at byte {e.start})") from None


def parse_user_json(text: str, path: Path, what: str, shape: str) -> Any:
    """The JSON value of a user's file, or InputError naming the file (and line) and the shape it should have.

    what (str): The file as the messages name it. shape (str): What it should hold, e.g. "a flat list of names".
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(path, e.lineno, f"{what} is not valid JSON ({shape}): {e.msg}") from None
    except RecursionError:
        raise InputError(path, None, f"{what} is JSON nested too deeply: give {shape}") from None
