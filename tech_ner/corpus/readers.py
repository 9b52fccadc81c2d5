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

from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

from ..files.problems import InputError, Problems, shown
from ..files.textfile import check_encoding, decode_lines
from .sentences import ReadCounts, ReadOptions, Sentence, count_sentence, decoded_lines
from .tabular import read_csv, read_jsonl

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
        raise InputError(
            path,
            None,
            f"no tag column: lines hold one column, e.g. {shown(token_lines[0])}. Each token line needs its tag (`token TAG`)",
        )
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
    raise InputError(
        path, None, f"cannot tell the format: lines have {width} columns. Pass --format, one of: {', '.join(FORMATS)}"
    )


def read_sentences(
    paths: Sequence[Path], options: ReadOptions, problems: Problems, counts: ReadCounts
) -> Iterator[Sentence]:
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
            reader = read_csv(path, options, problems, counts)
        elif fmt == "jsonl":
            reader = read_jsonl(path, options, problems, counts)
        elif fmt in TEXT_FORMATS:
            reader = _read_columns(path, fmt, options, problems, counts)
        else:
            raise InputError(path, None, f"unknown format {fmt!r}; use one of: {', '.join(FORMATS)}")
        read_before = counts.sentences
        for sent in reader:
            yield sent
        if counts.sentences == read_before:  # (a file whose sentences were all skipped has said why already)
            problems.report(path, None, "empty_file", "file holds no sentences", "nothing read from it")


def _read_columns(
    path: Path, fmt: str, options: ReadOptions, problems: Problems, counts: ReadCounts
) -> Iterator[Sentence]:
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
        if n_lines and count_sentence(problems, counts, path, n_lines, bad):
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

    for lineno, text, error in decoded_lines(path, options.encoding, problems, counts):
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
            bad = (
                lineno,
                "no_tag_column",
                f"line has no tag column: {shown(text)} (expected {width} columns: token{' and tag' if width == 2 else ', ..., tag'})",
            )
            continue
        if len(parts) != width:
            hint = (
                " (a token containing spaces? separate columns with tabs)" if not tabbed and len(parts) > width else ""
            )
            bad = (lineno, "columns", f"line has {len(parts)} columns, expected {width}{hint}: {shown(text)}")
            continue
        word, tag = parts[0], parts[tag_col].strip()
        if tabbed:
            word = word.strip(" ")
        if not word:
            bad = (lineno, "empty_token", "empty token before the tag column")
            continue
        if not tag:
            bad = (
                lineno,
                "empty_tag",
                f"empty tag for token {shown(word)}: every token needs a tag such as O or B-TECH",
            )
            continue
        if tabbed and len(word.split()) > 1:
            pieces = word.split()
            problems.report(
                path,
                lineno,
                "token_spaces",
                f"token {shown(word)} contains spaces",
                f"split it into {len(pieces)} tokens",
            )
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
