"""BIO files in, DocBin corpus out: decode, repair, rewrite labels, group, write.

Counts in equal counts out: every sentence and token read is written, skipped
(with a reason), or dropped by an option, and the run checks that identity
before it writes anything.
"""

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from spacy.tokens import Doc, DocBin
from spacy.vocab import Vocab

from ..files.atomic import atomic_path, check_replaceable
from .docbin import DOCBIN_ATTRS, expand_inputs
from .labels import LabelMap
from ..files.problems import InputError, Problems, check_output, same_file
from .readers import read_sentences
from .sentences import ReadCounts, ReadOptions, Sentence
from ..pipeline.tags import TagError, decode, parse_tag, spans_to_iob2, unclosed_bioes, uses_bioes

SCHEMES = ("auto", "iob1", "iob2", "bioes")


@dataclass
class ConvertStats:
    """What went in and what came out."""

    read: ReadCounts = field(default_factory=ReadCounts)
    entities_in: Counter = field(default_factory=Counter)
    sentences_out: int = 0
    tokens_out: int = 0
    docs_out: int = 0
    entities_out: Counter = field(default_factory=Counter)
    dropped_entities: Counter = field(default_factory=Counter)  # input label -> count
    joined_entities: Counter = field(default_factory=Counter)  # input label -> count joined to the entity before
    tag_skipped_sentences: int = 0
    tag_skipped_tokens: int = 0
    split_tokens: int = 0
    schemes: Dict[str, str] = field(default_factory=dict)
    problems: Problems = field(default_factory=Problems)
    shards: List[str] = field(default_factory=list)

    def check_balance(self) -> None:
        """Sentences and tokens in = out + skipped + dropped; a failure is a bug."""
        r = self.read
        s_in = r.sentences
        s_out = self.sentences_out + r.skipped_sentences + r.dropped_meta_sentences + self.tag_skipped_sentences
        t_in = r.tokens + self.split_tokens
        t_out = self.tokens_out + r.skipped_tokens + r.dropped_meta_tokens + self.tag_skipped_tokens
        if (s_in, t_in) != (s_out, t_out):
            raise AssertionError(
                f"conversion lost count: sentences {s_in} in vs {s_out} accounted, tokens {t_in} vs {t_out}"
            )

    def table(self) -> str:
        r = self.read
        rows: List[Tuple[str, object, object]] = [
            ("files", r.files, len(self.shards) or "-"),
            ("documents", "-", self.docs_out),
            ("sentences", r.sentences, self.sentences_out),
            ("tokens", r.tokens, self.tokens_out),
        ]
        labels_in = sorted(self.entities_in)
        labels_out = sorted(self.entities_out)
        for label in labels_in:
            rows.append(
                (
                    f"entities {label}",
                    self.entities_in[label],
                    self.entities_out.get(label, "-") if label in self.entities_out else "-",
                )
            )
        for label in labels_out:
            if label not in self.entities_in:
                rows.append((f"entities {label}", "-", self.entities_out[label]))
        rows.append(("entities (all)", sum(self.entities_in.values()), sum(self.entities_out.values())))
        w = max(len(str(a)) for a, _, _ in rows)
        lines = [f"{'':<{w}}  {'in':>10}  {'out':>10}"]
        lines += [f"{a:<{w}}  {str(b):>10}  {str(c):>10}" for a, b, c in rows]
        return "\n".join(lines)

    def notes(self) -> List[str]:
        r = self.read
        out = []
        if r.skipped_sentences or self.tag_skipped_sentences:
            out.append(
                f"skipped {r.skipped_sentences + self.tag_skipped_sentences} sentences "
                f"({r.skipped_tokens + self.tag_skipped_tokens} tokens) with problems listed above"
            )
        if r.dropped_meta_sentences:
            out.append(
                f"dropped {r.dropped_meta_sentences} StackOverflow header/code-placeholder sentences "
                f"({r.dropped_meta_tokens} tokens), as --drop-so-meta asks"
            )
        if self.split_tokens:
            out.append(f"added {self.split_tokens} tokens by splitting tokens that contained spaces")
        for label, n in sorted(self.joined_entities.items()):
            out.append(f"joined {n} {label} entities to the entity right before them (--join)")
        for label, n in sorted(self.dropped_entities.items()):
            out.append(f"dropped {n} {label} entities (label map)")
        if self.problems is not None:
            for kind, n in sorted(self.problems.counts.items()):
                out.append(f"{kind}: {n}")
        return out


class _SchemeTracker:
    """Reports I- tags that begin entities as repairs, unless the file is IOB1.

    In auto mode a file is IOB1 when no B- tag begins an entity (B- only
    separates two adjacent entities of one label). Until a B- proves the file
    is IOB2, such I- starts are held back (first few kept) and reported at the
    end if the file turns out IOB2.
    """

    def __init__(self, scheme: str, problems: Problems):
        self.scheme = scheme
        self.problems = problems
        self.path: Optional[str] = None
        self.held: List[Tuple[str, int, str]] = []
        self.held_count = 0
        self.proven_iob2 = False
        self.bioes = False
        self.results: Dict[str, str] = {}

    def start_file(self, path: str) -> None:
        self.finish_file()
        self.path = path
        self.held, self.held_count = [], 0
        self.proven_iob2 = self.scheme == "iob2"
        self.bioes = self.scheme == "bioes"

    def finish_file(self) -> None:
        if self.path is None:
            return
        if self.bioes:
            name = "BIOES"
        elif self.scheme == "iob1" or (not self.proven_iob2 and self.held_count):
            name = "IOB1"
        else:
            name = "IOB2"
            self._flush()
        self.results[self.path] = name
        self.path = None

    def _flush(self) -> None:
        for path, line, msg in self.held:
            self.problems.report(path, line, "i_start", msg, "repaired")
        if self.held_count > len(self.held):
            self.problems.counts["i_start"] += self.held_count - len(self.held)
        self.held, self.held_count = [], 0

    def sentence(self, sent: Sentence, parsed, spans, issues, b_fresh: int) -> None:
        if not self.bioes and self.scheme == "auto" and uses_bioes(parsed):
            self.bioes = True
        if self.bioes:
            issues = issues + unclosed_bioes(parsed, spans, sent.tags)
        for issue in issues:
            line = sent.token_line(issue.index)
            if issue.kind == "i_start" and not self.bioes and not self.proven_iob2:
                if self.scheme == "iob1":
                    continue
                self.held_count += 1
                if len(self.held) < self.problems.keep or self.problems.strict:
                    self.held.append((sent.path, line, issue.message))
                continue
            self.problems.report(sent.path, line, issue.kind, issue.message, "repaired")
        if b_fresh and self.scheme == "auto" and not self.proven_iob2 and not self.bioes:
            self.proven_iob2 = True
            self._flush()


def _docs(
    sentences: Iterator[Sentence],
    vocab: Vocab,
    label_map: Optional[LabelMap],
    n_sents: int,
    scheme: str,
    stats: ConvertStats,
    problems: Problems,
    join: Sequence[str] = (),
) -> Iterator[Doc]:
    tracker = _SchemeTracker(scheme, problems)
    words: List[str] = []
    tags: List[str] = []
    starts: List[bool] = []
    n_in_doc = 0
    first: Optional[Sentence] = None

    def flush():
        nonlocal words, tags, starts, n_in_doc, first
        if not words:
            return None
        doc = Doc(vocab, words=words, spaces=[True] * (len(words) - 1) + [False], ents=tags, sent_starts=starts)
        doc.user_data["source"] = f"{first.path}:{first.line}"
        stats.docs_out += 1
        words, tags, starts, n_in_doc, first = [], [], [], 0, None
        return doc

    for sent in sentences:
        if sent.path != tracker.path:
            tracker.start_file(sent.path)
        stats.split_tokens += sent.extra_tokens
        try:
            parsed = [parse_tag(t) for t in sent.tags]
        except TagError as e:
            bad = next(i for i, t in enumerate(sent.tags) if _bad_tag(t))
            problems.report(sent.path, sent.token_line(bad), "tag", str(e), "skipped the sentence")
            stats.tag_skipped_sentences += 1
            stats.tag_skipped_tokens += len(sent.words)
            continue
        spans, issues, b_fresh = decode(parsed, sent.tags)
        tracker.sentence(sent, parsed, spans, issues, b_fresh)
        kept: List[Tuple[int, int, str]] = []
        for start, end, label in spans:
            stats.entities_in[label] += 1
            if label in join and kept and kept[-1][1] == start:  # "Python" + "3.12": one span, the first one's label
                kept[-1] = (kept[-1][0], end, kept[-1][2])
                stats.joined_entities[label] += 1
                continue
            out = label_map.map(label) if label_map else label
            if out is None:
                stats.dropped_entities[label] += 1
            else:
                kept.append((start, end, out))
                stats.entities_out[out] += 1
        if (sent.doc_start or n_in_doc >= n_sents) and words:
            doc = flush()
            if doc is not None:
                yield doc
        if first is None:
            first = sent
        words.extend(sent.words)
        tags.extend(spans_to_iob2(len(sent.words), kept))
        starts.extend([True] + [False] * (len(sent.words) - 1))
        n_in_doc += 1
        stats.sentences_out += 1
        stats.tokens_out += len(sent.words)
    tracker.finish_file()
    stats.schemes.update(tracker.results)
    doc = flush()
    if doc is not None:
        yield doc


def _bad_tag(tag: str) -> bool:
    try:
        parse_tag(tag)
        return False
    except TagError:
        return True


def convert(
    inputs: Sequence[Path],
    output: Path,
    *,
    read_options: Optional[ReadOptions] = None,
    label_map: Optional[LabelMap] = None,
    n_sents: int = 10,
    scheme: str = "auto",
    strict: bool = False,
    shard_tokens: int = 500_000,
    problems: Optional[Problems] = None,
    join: Sequence[str] = (),
) -> ConvertStats:
    """Convert BIO files into a DocBin file (`*.spacy`) or a folder of DocBin shards.

    inputs (Sequence[Path]): Files or folders (every file below a folder, sorted).
    output (Path): `X.spacy` for one file; any other path is a folder of
        `part-NNNNN.spacy` shards of at most shard_tokens tokens, which keeps
        memory flat for inputs of any size. spaCy reads both.
    n_sents (int): Sentences per document where the input marks no documents.
    strict (bool): Stop at the first problem and write nothing.
    problems (Optional[Problems]): Where problems go (the caller's, to print them even when the run fails).
    join (Sequence[str]): Input labels whose entity, when it begins where the entity before it ends, joins that
        entity (StackOverflow tags "Python 3.12" as Language + Version; GUIDELINES.md 4.1 makes it one span). Not
        joined, such an entity goes through the label map like any other.
    RETURNS (ConvertStats): counts in and out, repairs and skips.
    """
    if scheme not in SCHEMES:
        raise InputError(None, None, f"--scheme {scheme!r}: use one of {', '.join(SCHEMES)}")
    if n_sents < 1:
        raise InputError(None, None, f"--n-sents must be at least 1, not {n_sents}")
    files = expand_inputs(inputs)
    output = Path(output)
    check_convert_output(output, files)
    problems = problems if problems is not None else Problems(strict=strict)
    stats = ConvertStats(problems=problems)
    vocab = Vocab()
    sentences = read_sentences(files, read_options or ReadOptions(), problems, stats.read)
    docs = _docs(sentences, vocab, label_map, n_sents, scheme, stats, problems, join)
    if output.suffix == ".spacy":
        with atomic_path(output) as tmp:
            db = DocBin(attrs=DOCBIN_ATTRS, store_user_data=True)
            for doc in docs:
                db.add(doc)
            _finish(stats, label_map)
            db.to_disk(tmp)
        stats.shards = [str(output)]
    else:
        with atomic_path(output, is_dir=True) as tmp:
            db = DocBin(attrs=DOCBIN_ATTRS, store_user_data=True)
            n_tokens = 0
            for doc in docs:
                db.add(doc)
                n_tokens += len(doc)
                if n_tokens >= shard_tokens:
                    stats.shards.append(_write_shard(db, tmp, len(stats.shards), output))
                    db, n_tokens = DocBin(attrs=DOCBIN_ATTRS, store_user_data=True), 0
            if len(db):
                stats.shards.append(_write_shard(db, tmp, len(stats.shards), output))
            _finish(stats, label_map)
    return stats


def check_convert_output(output: Path, files: Sequence[Path]) -> None:
    """Refuse an output that would overwrite or remove an input, or any file convert did not write.

    A folder output is replaced whole, so it must not hold an input; atomic_path refuses a folder that holds
    anything but an earlier output (the files its manifest lists).
    """
    is_dir = output.suffix != ".spacy"
    same_file(output, files)
    check_output(output, is_dir=is_dir)
    check_replaceable(output, is_dir=is_dir)
    if not is_dir or not output.is_dir():
        return
    folder = output.resolve()
    for f in files:
        if folder in Path(f).resolve().parents:
            raise InputError(
                output,
                None,
                f"the output folder holds the input {f}, and convert replaces the folder whole: choose a new folder",
            )


def _write_shard(db: DocBin, folder: Path, index: int, final: Path) -> str:
    name = f"part-{index:05d}.spacy"
    db.to_disk(folder / name)
    return str(final / name)


def _finish(stats: ConvertStats, label_map: Optional[LabelMap]) -> None:
    if label_map:
        label_map.check_used(stats.entities_in)
    stats.check_balance()
    if stats.sentences_out == 0:
        raise InputError(None, None, "no sentences to write: every input was empty or skipped (see the problems above)")
