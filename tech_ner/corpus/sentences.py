"""What the BIO readers yield and count: `Sentence`, `ReadOptions`, `ReadCounts`, and the steps every reader shares
(decoding lines, counting and skipping sentences)."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from ..files.problems import Problems
from ..files.textfile import TextLines, decode_lines, text_problem


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


def skip(problems: Problems, counts: ReadCounts, path, line: int, kind: str, message: str, n_tokens: int) -> None:
    problems.report(path, line, kind, message, "skipped the sentence")
    counts.skipped_sentences += 1
    counts.skipped_tokens += n_tokens


def count_sentence(
    problems: Problems, counts: ReadCounts, path, n_tokens: int, bad: Optional[Tuple[int, str, str]]
) -> bool:
    """Count a finished sentence. RETURNS False when its first problem (`bad`) skips it."""
    counts.sentences += 1
    counts.tokens += n_tokens
    if bad is not None:
        skip(problems, counts, path, bad[0], bad[1], bad[2], n_tokens)
        return False
    return True


def decoded_lines(
    path: Path, encoding: str, problems: Problems, counts: ReadCounts
) -> Iterator[Tuple[int, Optional[str], str]]:
    """Yield (line number, text without line end or None if the line cannot be used, why not)."""
    with open(path, "rb") as f:
        lines = decode_lines(f, encoding)
        note_encoding(path, lines, problems, counts)
        for line in lines:
            if line.error is not None:
                yield line.number, None, f"{line.error}; re-encode the file as UTF-8 or pass --encoding (e.g. cp1252)"
                continue
            problem = text_problem(line.text)
            if problem is not None:
                hint = (
                    " (a UTF-16 file without a byte-order mark? pass --encoding utf-16-le)" if "NUL" in problem else ""
                )
                yield line.number, None, f"line holds {problem}{hint}"
                continue
            yield line.number, line.text, ""


def note_encoding(path: Path, lines: TextLines, problems: Problems, counts: ReadCounts) -> None:
    if lines.bom == "utf-8" and lines.skip:
        problems.report(path, 1, "bom", "file starts with a UTF-8 byte-order mark", "removed it")
    elif lines.codec != "utf-8" and str(path) in counts.formats:
        counts.formats[str(path)] += f" ({lines.codec})"
