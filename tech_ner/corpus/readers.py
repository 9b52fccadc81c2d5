"""Readers for the BIO file shapes that circulate in this field.

Every reader streams: it yields one `Sentence` at a time and holds one sentence
in memory. Problems go to a `Problems` collector with file and line; a sentence
with a problem that cannot be repaired is skipped whole, and counted.

Formats:
- two_column:    `token TAG` (tab or spaces; a line with a tab is split on tabs, any other on whitespace)
- conll2003:     `token POS chunk TAG`, `-DOCSTART-` lines break documents
- x_column:      `token -X- _ TAG`
- stackoverflow: `token TAG token markdown-tag`, tab-only separator lines
- csv:           `Sentence #,Word,POS,Tag`, sentence id on a sentence's first row
- jsonl:         `{"tokens": [...], "ner_tags": [...]}` (strings, or ids with --tag-names)

Files are read line by line (`textfile.decode_lines`): UTF-8 unless a byte-order mark says UTF-16/32 or
--encoding says otherwise, lines end at \n, \r\n or a lone \r, and a line that does not decode, or holds a
NUL character or a lone surrogate, skips its own sentence (counted), never the file.
"""
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from ..files.problems import SHOWN_CHARS, InputError, Problems, printable, shown
from ..files.textfile import TextLines, check_encoding, csv_records, decode_lines, text_problem

FORMATS = ("two_column", "conll2003", "x_column", "stackoverflow", "csv", "jsonl")
TEXT_FORMATS = {
    # format: (tag column, expected columns)
    "two_column": (-1, 2),
    "conll2003": (-1, 4),
    "x_column": (-1, 4),
    "stackoverflow": (1, 4),
}
SO_HEADERS = frozenset({"Question_ID", "Question_URL", "Answer_to_Question_ID"})
SO_CODE = frozenset({"CODE_BLOCK", "OP_BLOCK"})
SO_DOC_START = frozenset({"Question_ID", "Answer_to_Question_ID"})


@dataclass
class Sentence:
    """One sentence as read, before tags are decoded."""

    words: List[str]
    tags: List[str]
    path: str
    line: int  # line of the first token
    line_step: int = 1  # token i is on line `line + i * line_step`
    doc_start: bool = False
    extra_tokens: int = 0  # tokens added by splitting tokens that contained spaces

    def token_line(self, i: int) -> int:
        return self.line + i * self.line_step


@dataclass
class ReadOptions:
    format: str = "auto"
    encoding: str = "auto"  # auto: a byte-order mark's UTF-8/16/32, else UTF-8
    drop_so_meta: bool = False
    tag_names: Optional[Sequence[str]] = None  # for integer ner_tags in jsonl


@dataclass
class ReadCounts:
    """What the readers saw and did, before decoding."""

    files: int = 0
    sentences: int = 0
    tokens: int = 0
    skipped_sentences: int = 0
    skipped_tokens: int = 0
    dropped_meta_sentences: int = 0
    dropped_meta_tokens: int = 0
    formats: Dict[str, str] = field(default_factory=dict)


def split_columns(text: str) -> List[str]:
    """A line's columns: a line with a tab is split on tabs (a token may hold spaces), any other on whitespace.

    Deciding per line, not per file, keeps a file that mixes `token<TAB>TAG` and `token TAG` lines whole.
    """
    return text.split("\t") if "\t" in text else text.split()


def _head_lines(path: Path, encoding: str, max_chars: int = 65536, max_lines: int = 500) -> List[str]:
    lines: List[str] = []
    chars = 0
    with open(path, "rb") as f:
        for line in decode_lines(f, encoding):
            lines.append(line.text)
            chars += len(line.text)
            if chars >= max_chars or len(lines) >= max_lines:
                break
    return lines


def detect_format(path: Path, encoding: str = "auto") -> Optional[str]:
    """Guess a file's format from its name and first lines.

    encoding (str): auto or a codec name (see ReadOptions).
    RETURNS (Optional[str]): a name from FORMATS, or None for a file with no content.
    """
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    lines = _head_lines(path, encoding)
    content = [l for l in lines if l.strip()]
    if not content:
        return None
    first = content[0].lstrip()
    if first.startswith("{"):
        return "jsonl"
    if "," in first and "word" in first.lower() and "sentence" in first.lower():
        return "csv"
    docstart = any(l.split()[0] == "-DOCSTART-" for l in content[:50])
    token_lines = [l for l in content if l.split()[0] != "-DOCSTART-"][:200]
    if not token_lines:
        return "conll2003" if docstart else None
    tabbed = "\t" in token_lines[0]
    widths = [len(split_columns(l)) for l in token_lines]
    multi = [w for w in widths if w >= 2]
    if not multi:
        raise InputError(path, None, f"no tag column: lines hold one column, e.g. {shown(token_lines[0])}. Each token line needs its tag (`token TAG`)")
    width = max(sorted(set(multi), reverse=True), key=lambda w: (multi.count(w), w in (2, 4)))
    cols = split_columns(token_lines[0])
    if width == 2:
        return "two_column"
    if width == 4:
        if cols[1] == "-X-" and cols[2] == "_":
            return "x_column"
        tab_separators = any(l == "\t" for l in lines)
        if tabbed and tab_separators and cols[2] == cols[0]:
            return "stackoverflow"
        return "conll2003"
    if docstart:
        return "conll2003"
    raise InputError(path, None, f"cannot tell the format: lines have {width} columns. Pass --format, one of: {', '.join(FORMATS)}")


def read_sentences(paths: Sequence[Path], options: ReadOptions, problems: Problems, counts: ReadCounts) -> Iterator[Sentence]:
    """Stream sentences from files, each in its own (detected or given) format."""
    check_encoding(options.encoding)
    for path in paths:
        path = Path(path)
        fmt = options.format if options.format != "auto" else detect_format(path, options.encoding)
        counts.files += 1
        if fmt is None or path.stat().st_size == 0:
            what = "is empty" if path.stat().st_size == 0 else "holds only blank lines"
            problems.report(path, None, "empty_file", f"file {what}: no sentences", "skipped the file")
            counts.formats[str(path)] = "empty"
            continue
        counts.formats[str(path)] = fmt
        if fmt == "csv":
            reader = _read_csv(path, options, problems, counts)
        elif fmt == "jsonl":
            reader = _read_jsonl(path, options, problems, counts)
        elif fmt in TEXT_FORMATS:
            reader = _read_columns(path, fmt, options, problems, counts)
        else:
            raise InputError(path, None, f"unknown format {fmt!r}; use one of: {', '.join(FORMATS)}")
        read_before = counts.sentences
        for sent in reader:
            yield sent
        if counts.sentences == read_before:  # (a file whose sentences were all skipped has said why already)
            problems.report(path, None, "empty_file", "file holds no sentences", "nothing read from it")


def _skip(problems: Problems, counts: ReadCounts, path, line: int, kind: str, message: str, n_tokens: int) -> None:
    problems.report(path, line, kind, message, "skipped the sentence")
    counts.skipped_sentences += 1
    counts.skipped_tokens += n_tokens


def _count_sentence(problems: Problems, counts: ReadCounts, path, n_tokens: int, bad: Optional[Tuple[int, str, str]]) -> bool:
    """Count a finished sentence. RETURNS False when its first problem (`bad`) skips it."""
    counts.sentences += 1
    counts.tokens += n_tokens
    if bad is not None:
        _skip(problems, counts, path, bad[0], bad[1], bad[2], n_tokens)
        return False
    return True


def _decoded_lines(path: Path, encoding: str, problems: Problems, counts: ReadCounts) -> Iterator[Tuple[int, Optional[str], str]]:
    """Yield (line number, text without line end or None if the line cannot be used, why not)."""
    with open(path, "rb") as f:
        lines = decode_lines(f, encoding)
        _note_encoding(path, lines, problems, counts)
        for line in lines:
            if line.error is not None:
                yield line.number, None, f"{line.error}; re-encode the file as UTF-8 or pass --encoding (e.g. cp1252)"
                continue
            problem = text_problem(line.text)
            if problem is not None:
                hint = " (a UTF-16 file without a byte-order mark? pass --encoding utf-16-le)" if "NUL" in problem else ""
                yield line.number, None, f"line holds {problem}{hint}"
                continue
            yield line.number, line.text, ""


def _note_encoding(path: Path, lines: TextLines, problems: Problems, counts: ReadCounts) -> None:
    if lines.bom == "utf-8" and lines.skip:
        problems.report(path, 1, "bom", "file starts with a UTF-8 byte-order mark", "removed it")
    elif lines.codec != "utf-8" and str(path) in counts.formats:
        counts.formats[str(path)] += f" ({lines.codec})"


def _read_columns(path: Path, fmt: str, options: ReadOptions, problems: Problems, counts: ReadCounts) -> Iterator[Sentence]:
    tag_col, width = TEXT_FORMATS[fmt]
    words: List[str] = []
    tags: List[str] = []
    first_line = 0
    bad: Optional[Tuple[int, str, str]] = None  # first problem in the current sentence
    extra = 0
    doc_start = True
    n_lines = 0  # token lines in the current sentence, for skipped-token counts

    def finish():
        nonlocal words, tags, bad, extra, doc_start, n_lines
        sent = None
        if n_lines and _count_sentence(problems, counts, path, n_lines, bad):
            if fmt == "stackoverflow" and _is_so_meta(words):
                if words[0] in SO_DOC_START:
                    doc_start = True
                if options.drop_so_meta:
                    counts.dropped_meta_sentences += 1
                    counts.dropped_meta_tokens += n_lines
                else:
                    sent = Sentence(words, tags, str(path), first_line, 1, doc_start, extra)
            else:
                sent = Sentence(words, tags, str(path), first_line, 1, doc_start, extra)
        if sent is not None:
            doc_start = False
        words, tags, bad, extra, n_lines = [], [], None, 0, 0
        return sent

    for lineno, text, error in _decoded_lines(path, options.encoding, problems, counts):
        if text is None:
            if not n_lines:
                first_line = lineno
            n_lines += 1
            if bad is None:
                bad = (lineno, "encoding", error)
            continue
        if not text.strip():
            sent = finish()
            if sent is not None:
                yield sent
            continue
        tabbed = "\t" in text
        parts = split_columns(text)
        if parts[0].strip() == "-DOCSTART-":
            sent = finish()
            if sent is not None:
                yield sent
            doc_start = True
            continue
        if not n_lines:
            first_line = lineno
        n_lines += 1
        if bad is not None:
            continue
        if len(parts) < 2:
            bad = (lineno, "no_tag_column", f"line has no tag column: {shown(text)} (expected {width} columns: token{' and tag' if width == 2 else ', ..., tag'})")
            continue
        if len(parts) != width:
            hint = " (a token containing spaces? separate columns with tabs)" if not tabbed and len(parts) > width else ""
            bad = (lineno, "columns", f"line has {len(parts)} columns, expected {width}{hint}: {shown(text)}")
            continue
        word, tag = parts[0], parts[tag_col].strip()
        if tabbed:
            word = word.strip(" ")
        if not word:
            bad = (lineno, "empty_token", "empty token before the tag column")
            continue
        if not tag:
            bad = (lineno, "empty_tag", f"empty tag for token {shown(word)}: every token needs a tag such as O or B-TECH")
            continue
        if tabbed and len(word.split()) > 1:
            pieces = word.split()
            problems.report(path, lineno, "token_spaces", f"token {shown(word)} contains spaces", f"split it into {len(pieces)} tokens")
            words.extend(pieces)
            tags.extend(_split_tag(tag, len(pieces)))
            extra += len(pieces) - 1
            continue
        words.append(word)
        tags.append(tag)
    sent = finish()
    if sent is not None:
        yield sent


def _split_tag(tag: str, n: int) -> List[str]:
    """Tags for the n pieces of a token that contained spaces, keeping the entity whole."""
    role = tag[:2].upper()
    label = tag[2:]
    if role in ("B-", "S-", "U-"):
        head = ["B-" + label]
    elif role in ("I-", "E-", "L-"):
        head = ["I-" + label]
    else:
        return [tag] * n
    if role in ("S-", "U-", "E-", "L-"):
        return head + ["I-" + label] * (n - 2) + ["E-" + label]
    return head + ["I-" + label] * (n - 1)


def _is_so_meta(words: List[str]) -> bool:
    return len(words) > 1 and words[1] == ":" and (words[0] in SO_HEADERS or words[0] in SO_CODE)


_CSV_SENT = ("sentence #", "sentence", "sentence_id", "sentence_idx", "sentence #:")
_CSV_WORD = ("word", "token", "words", "tokens")
_CSV_TAG = ("tag", "ner", "ner_tag", "label", "tags")


def _read_csv(path: Path, options: ReadOptions, problems: Problems, counts: ReadCounts) -> Iterator[Sentence]:
    with open(path, "rb") as f:
        lines = decode_lines(f, options.encoding)
        _note_encoding(path, lines, problems, counts)
        records = csv_records(lines)
        header = None
        for record in records:
            if record.error is not None:
                raise InputError(path, record.error_line, f"cannot read the header: {record.error}; pass --encoding or fix the header")
            if any(c.strip() for c in record.fields):
                header = record.fields
                break
        if header is None:
            return
        folded = [h.strip().lower() for h in header]

        def column(names, what):
            for i, h in enumerate(folded):
                if h in names:
                    return i
            raise InputError(path, 1, f"no {what} column in the header {shown(header)} (expected one of: {', '.join(names)})")

        s_col, w_col, t_col = column(_CSV_SENT, "sentence id"), column(_CSV_WORD, "word"), column(_CSV_TAG, "tag")
        need = max(s_col, w_col, t_col) + 1
        words: List[str] = []
        tags: List[str] = []
        first = 0
        bad = None
        n = 0
        line_step = 1

        def finish():
            nonlocal words, tags, bad, n
            sent = None
            if n and _count_sentence(problems, counts, path, n, bad):
                sent = Sentence(words, tags, str(path), first, line_step)
            words, tags, bad, n = [], [], None, 0
            return sent

        for record in records:
            row, lineno = record.fields, record.line
            if record.error is None and not any(c.strip() for c in row):
                continue
            # a row that cannot be read (fields []) belongs to the sentence before it: its id is unreadable
            if len(row) > s_col and row[s_col].strip():
                sent = finish()
                if sent is not None:
                    yield sent
            if not n:
                first = lineno
            n += 1  # one row, one token: skipped rows are counted like read ones
            if bad is not None:
                continue
            if record.error is not None:
                hint = "; re-encode the file as UTF-8 or pass --encoding (e.g. cp1252)" if row else ""
                bad = (record.error_line, "encoding" if row else "csv", f"{record.error}{hint}")
                continue
            if len(row) < need:
                bad = (lineno, "columns", f"row has {len(row)} fields, expected {len(header)}: {shown(row)}")
                continue
            word, tag = row[w_col], row[t_col].strip()
            invalid = text_problem(word) or text_problem(tag)
            if invalid:
                bad = (lineno, "invalid_text", f"row holds {invalid}")
            elif not word.strip():
                bad = (lineno, "empty_token", "empty word")
            elif not tag:
                bad = (lineno, "empty_tag", f"empty tag for word {shown(word)}")
            elif len(word.split()) > 1:
                bad = (lineno, "token_spaces", f"word {shown(word)} contains spaces; split it into one word per row")
            else:
                words.append(word.strip())
                tags.append(tag)
        sent = finish()
        if sent is not None:
            yield sent


_JSON_WORDS = ("tokens", "words")
_JSON_TAGS = ("ner_tags", "ner", "tags", "labels")


def _read_jsonl(path: Path, options: ReadOptions, problems: Problems, counts: ReadCounts) -> Iterator[Sentence]:
    names = list(options.tag_names) if options.tag_names else None
    for lineno, text, error in _decoded_lines(path, options.encoding, problems, counts):
        if text is not None and not text.strip():
            continue
        counts.sentences += 1
        if text is None:
            _skip(problems, counts, path, lineno, "encoding", error, 0)
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            _skip(problems, counts, path, lineno, "json", f"invalid JSON at column {e.colno}: {e.msg}", 0)
            continue
        except RecursionError:
            _skip(problems, counts, path, lineno, "json", "JSON nested too deeply to read", 0)
            continue
        if not isinstance(obj, dict):
            _skip(problems, counts, path, lineno, "json", "line is not a JSON object", 0)
            continue
        wkey = next((k for k in _JSON_WORDS if k in obj), None)
        tkey = next((k for k in _JSON_TAGS if k in obj), None)
        if wkey is None or tkey is None:
            missing = "tokens/words" if wkey is None else "ner_tags/ner"
            _skip(problems, counts, path, lineno, "json", f"object has no {missing} field (keys: {printable(', '.join(obj), SHOWN_CHARS)})", 0)
            continue
        words, raw_tags = obj[wkey], obj[tkey]
        if not isinstance(words, list) or not isinstance(raw_tags, list):
            _skip(problems, counts, path, lineno, "json", f"{wkey} and {tkey} must be lists", 0)
            continue
        counts.tokens += len(words)
        if len(words) != len(raw_tags):
            _skip(problems, counts, path, lineno, "length", f"{len(words)} {wkey} but {len(raw_tags)} {tkey}", len(words))
            continue
        if not words:
            _skip(problems, counts, path, lineno, "empty_sentence", "empty token list", 0)
            continue
        tags = []
        bad = None
        for i, (w, t) in enumerate(zip(words, raw_tags)):
            invalid = next((p for p in (w, t) if isinstance(p, str) and text_problem(p)), None)
            if invalid is not None:
                bad = f"{wkey if invalid is w else tkey}[{i}] holds {text_problem(invalid)}"
            elif isinstance(t, bool) or not isinstance(t, (int, str)):
                bad = f"{tkey}[{i}] is {shown(t)}: tags must be strings or integer ids"
            elif isinstance(t, int):
                if names is None:
                    raise InputError(path, lineno, f"{tkey} holds integer ids; pass --tag-names with the label list (e.g. O,B-TECH,I-TECH) or a file with one name per line")
                if not 0 <= t < len(names):
                    bad = f"{tkey}[{i}] = {t} is outside the {len(names)} --tag-names"
                else:
                    t = names[t]
            if bad is None and (not isinstance(w, str) or not w.strip()):
                bad = f"{wkey}[{i}] is {shown(w)}: tokens must be non-empty strings"
            elif bad is None and len(w.split()) > 1:
                bad = f"{wkey}[{i}] = {shown(w)} contains spaces"
            elif bad is None and not str(t).strip():
                bad = f"{tkey}[{i}] is empty: every token needs a tag such as O or B-TECH"
            if bad:
                break
            tags.append(str(t).strip())
        if bad:
            _skip(problems, counts, path, lineno, "json", bad, len(words))
            continue
        yield Sentence([w.strip() for w in words], tags, str(path), lineno, 0)


def load_tag_names(value: Optional[str]) -> Optional[List[str]]:
    """--tag-names: a comma-separated list, or a file (one name per line, or a JSON list)."""
    if not value:
        return None
    p = Path(value)
    if p.is_file():
        try:
            text = p.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as e:
            raise InputError(p, None, f"--tag-names file is not UTF-8 text (byte {e.start + 1}): give one name per line or a JSON list") from None
        if text.lstrip().startswith("["):
            try:
                names = json.loads(text)
            except json.JSONDecodeError as e:
                raise InputError(p, e.lineno, f"--tag-names file is not a valid JSON list: {e.msg}") from None
            except RecursionError:
                raise InputError(p, None, "--tag-names file is JSON nested too deeply: give a flat list of names") from None
            if not isinstance(names, list) or not all(isinstance(x, (str, int, float)) for x in names):
                raise InputError(p, None, "--tag-names file must hold a flat JSON list of names such as [\"O\", \"B-TECH\"]")
            names = [str(x) for x in names]
        else:
            names = [l.strip() for l in text.splitlines() if l.strip()]
        where = p
    else:
        names, where = [x.strip() for x in value.split(",")], None
    if not names or any(not n or text_problem(n) for n in names):
        raise InputError(where, None, f"--tag-names {shown(value)}: give non-empty names, e.g. O,B-TECH,I-TECH")
    return names
