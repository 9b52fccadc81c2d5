"""BIO readers for token tables: CSV (`Sentence #,Word,POS,Tag`, a sentence id on a sentence's first row) and JSONL
(`{"tokens": [...], "ner_tags": [...]}`, tag ids named with --tag-names)."""

import json
from pathlib import Path
from typing import Iterator, List, Optional

from ..files.problems import SHOWN_CHARS, InputError, Problems, printable, shown
from ..files.textfile import parse_user_json, read_user_text, csv_records, decode_lines, text_problem
from .sentences import ReadCounts, ReadOptions, Sentence, count_sentence, decoded_lines, note_encoding, skip

_CSV_SENT = ("sentence #", "sentence", "sentence_id", "sentence_idx", "sentence #:")
_CSV_WORD = ("word", "token", "words", "tokens")
_CSV_TAG = ("tag", "ner", "ner_tag", "label", "tags")


def read_csv(path: Path, options: ReadOptions, problems: Problems, counts: ReadCounts) -> Iterator[Sentence]:
    with open(path, "rb") as f:
        lines = decode_lines(f, options.encoding)
        note_encoding(path, lines, problems, counts)
        records = csv_records(lines)
        header = None
        for record in records:
            if record.error is not None:
                raise InputError(
                    path,
                    record.error_line,
                    f"cannot read the header: {record.error}; pass --encoding or fix the header",
                )
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
            raise InputError(
                path, 1, f"no {what} column in the header {shown(header)} (expected one of: {', '.join(names)})"
            )

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
            if n and count_sentence(problems, counts, path, n, bad):
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


def read_jsonl(path: Path, options: ReadOptions, problems: Problems, counts: ReadCounts) -> Iterator[Sentence]:
    names = list(options.tag_names) if options.tag_names else None
    for lineno, text, error in decoded_lines(path, options.encoding, problems, counts):
        if text is not None and not text.strip():
            continue
        counts.sentences += 1
        if text is None:
            skip(problems, counts, path, lineno, "encoding", error, 0)
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            skip(problems, counts, path, lineno, "json", f"invalid JSON at column {e.colno}: {e.msg}", 0)
            continue
        except RecursionError:
            skip(problems, counts, path, lineno, "json", "JSON nested too deeply to read", 0)
            continue
        if not isinstance(obj, dict):
            skip(problems, counts, path, lineno, "json", "line is not a JSON object", 0)
            continue
        wkey = next((k for k in _JSON_WORDS if k in obj), None)
        tkey = next((k for k in _JSON_TAGS if k in obj), None)
        if wkey is None or tkey is None:
            missing = "tokens/words" if wkey is None else "ner_tags/ner"
            skip(
                problems,
                counts,
                path,
                lineno,
                "json",
                f"object has no {missing} field (keys: {printable(', '.join(obj), SHOWN_CHARS)})",
                0,
            )
            continue
        words, raw_tags = obj[wkey], obj[tkey]
        if not isinstance(words, list) or not isinstance(raw_tags, list):
            skip(problems, counts, path, lineno, "json", f"{wkey} and {tkey} must be lists", 0)
            continue
        counts.tokens += len(words)
        if len(words) != len(raw_tags):
            skip(
                problems, counts, path, lineno, "length", f"{len(words)} {wkey} but {len(raw_tags)} {tkey}", len(words)
            )
            continue
        if not words:
            skip(problems, counts, path, lineno, "empty_sentence", "empty token list", 0)
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
                    raise InputError(
                        path,
                        lineno,
                        f"{tkey} holds integer ids; pass --tag-names with the label list (e.g. O,B-TECH,I-TECH) or a file with one name per line",
                    )
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
            skip(problems, counts, path, lineno, "json", bad, len(words))
            continue
        yield Sentence([w.strip() for w in words], tags, str(path), lineno, 0)


def load_tag_names(value: Optional[str]) -> Optional[List[str]]:
    """--tag-names: a comma-separated list, or a file (one name per line, or a JSON list)."""
    if not value:
        return None
    p = Path(value)
    if p.is_file():
        text = read_user_text(p, "--tag-names file")
        if text.lstrip().startswith("["):
            names = parse_user_json(text, p, "--tag-names file", "a flat list of names")
            if not isinstance(names, list) or not all(isinstance(x, (str, int, float)) for x in names):
                raise InputError(
                    p, None, '--tag-names file must hold a flat JSON list of names such as ["O", "B-TECH"]'
                )
            names = [str(x) for x in names]
        else:
            names = [l.strip() for l in text.splitlines() if l.strip()]
        where = p
    else:
        names, where = [x.strip() for x in value.split(",")], None
    if not names or any(not n or text_problem(n) for n in names):
        raise InputError(where, None, f"--tag-names {shown(value)}: give non-empty names, e.g. O,B-TECH,I-TECH")
    return names
