"""The embedded corpus: bracket markup sources -> tokenised, split IOB2 files and a corpus card.

Source files (`corpus/sources/<domain>.txt`) hold one sentence per line:

    @register news
    We moved the [PostgreSQL] cluster to [Kubernetes].

`# ...` lines are comments, `@register NAME` sets the register of the lines
below it, `@split train` puts the lines below it into train whatever the
seeded split says (the hard negatives: they teach, and the test split stays
comparable from one corpus version to the next), `[...]` marks a TECH span and
`\\[`, `\\]` are literal brackets.
"""

import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ..files.atomic import write_text_atomic
from ..files.problems import format_problem
from ..pipeline.tags import spans_to_iob2

REGISTERS = (
    "news",
    "blog",
    "docs",
    "abstract",
    "job_ad",
    "forum",
    "release_notes",
    # the registers of real text outside technology writing (hard negatives and the wild set)
    "wire",
    "science",
    "chat",
    "issue",
    "review",
    "everyday",
)
LABEL = "TECH"
SPLITS = ("train", "dev", "test")
DIRECTIVES = {"@register": REGISTERS, "@split": SPLITS}  # a source line `@register news` and the names it takes
MIN_TOKENS, MAX_TOKENS = 5, 60


class CorpusError(ValueError):
    """Problems in the sources; str() lists every one as `file:line: message`."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass
class Sentence:
    domain: str
    register: str
    path: str
    line: int
    text: str  # without markup
    spans: List[Tuple[int, int]]  # character offsets of TECH spans
    words: List[str] = field(default_factory=list)
    token_spans: List[Tuple[int, int, str]] = field(default_factory=list)
    split: Optional[str] = None  # set by `@split NAME`: the split it goes to, whatever the seed says

    @property
    def terms(self) -> List[str]:
        return [self.text[s:e] for s, e in self.spans]


def parse_markup(line: str) -> Tuple[str, List[Tuple[int, int]]]:
    """Strip bracket markup from one line.

    RETURNS (Tuple[str, List[Tuple[int, int]]]): the plain text and the
        character offsets of the marked spans in it.
    RAISES ValueError: unbalanced, nested, empty or space-padded brackets.
    """
    out: List[str] = []
    spans: List[Tuple[int, int]] = []
    start: Optional[int] = None
    pos = 0
    i = 0
    while i < len(line):
        ch = line[i]
        if ch == "\\" and i + 1 < len(line) and line[i + 1] in "[]\\":
            out.append(line[i + 1])
            pos += 1
            i += 2
            continue
        if ch == "[":
            if start is not None:
                raise ValueError(f"nested '[' at column {i + 1}: spans cannot nest")
            start = pos
        elif ch == "]":
            if start is None:
                raise ValueError(f"']' at column {i + 1} closes no '['")
            text = "".join(out[start:])
            if not text.strip():
                raise ValueError(f"empty span '[]' at column {i + 1}")
            if text != text.strip():
                raise ValueError(f"span [{text}] starts or ends with a space")
            spans.append((start, pos))
            start = None
        else:
            out.append(ch)
            pos += 1
        i += 1
    if start is not None:
        raise ValueError("'[' is never closed")
    return "".join(out), spans


def read_sources(source_dir: Path) -> Tuple[List[Sentence], List[str]]:
    """Parse every `*.txt` under source_dir. RETURNS the sentences and the problems."""
    sentences: List[Sentence] = []
    problems: List[str] = []
    files = sorted(Path(source_dir).glob("*.txt"))
    if not files:
        problems.append(format_problem(str(source_dir), None, "no *.txt source files"))
    for path in files:
        problems.extend(_read_file(path, sentences))
    return sentences, problems


def _read_file(path: Path, sentences: List[Sentence]) -> List[str]:
    problems = []
    register: Optional[str] = None
    pinned: Optional[str] = None
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        return [format_problem(str(path), None, f"not valid UTF-8 ({e.reason} at byte {e.start})")]
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        directive, _, name = line.partition(" ")
        if directive in DIRECTIVES:
            allowed = DIRECTIVES[directive]
            name = name.strip()
            if name not in allowed:
                problems.append(
                    format_problem(
                        str(path), lineno, f"unknown {directive[1:]} {name!r}; use one of {', '.join(allowed)}"
                    )
                )
            if directive == "@register":
                register = name
            else:
                pinned = name
            continue
        if register is None:
            problems.append(format_problem(str(path), lineno, "sentence before any '@register NAME' line"))
            continue
        try:
            text, spans = parse_markup(line)
        except ValueError as e:
            problems.append(format_problem(str(path), lineno, f"{e}: {line}"))
            continue
        sentences.append(Sentence(path.stem, register, str(path), lineno, text, spans, split=pinned))
    return problems


def tokenise(sentences: Sequence[Sentence], nlp) -> List[str]:
    """Tokenise with the pipeline's tokenizer and align spans to tokens. RETURNS problems."""
    problems = []
    for sent, doc in zip(sentences, nlp.tokenizer.pipe(s.text for s in sentences)):
        sent.words = [t.text for t in doc]
        sent.token_spans = []
        for start, end in sent.spans:
            span = doc.char_span(start, end, label=LABEL, alignment_mode="strict")
            if span is None:
                inside = doc.char_span(start, end, alignment_mode="expand")
                toks = " | ".join(t.text for t in inside) if inside is not None else "?"
                problems.append(
                    format_problem(
                        sent.path, sent.line, f"span [{sent.text[start:end]}] does not align to tokens (tokens: {toks})"
                    )
                )
                continue
            sent.token_spans.append((span.start, span.end, LABEL))
        n = len(doc)
        if not MIN_TOKENS <= n <= MAX_TOKENS:
            problems.append(
                format_problem(
                    sent.path, sent.line, f"sentence has {n} tokens; sentences must have {MIN_TOKENS} to {MAX_TOKENS}"
                )
            )
    return problems


def _dedup_key(text: str) -> str:
    return re.sub(r"[\W_]+", " ", text.casefold()).strip()


def _masked(s: Sentence) -> str:
    out, pos = [], 0
    for start, end in s.spans:
        out += [s.text[pos:start], " TERM "]
        pos = end
    out.append(s.text[pos:])
    return _dedup_key("".join(out))


def find_duplicates(sentences: Sequence[Sentence]) -> List[str]:
    """Sentences whose text is the same up to case, punctuation and spacing, and
    sentences that differ from another only in their terms (a template filled twice)."""
    seen: Dict[str, Sentence] = {}
    shapes: Dict[str, Sentence] = {}
    problems = []
    for s in sentences:
        key = _dedup_key(s.text)
        first = seen.get(key)
        if first is not None:
            problems.append(format_problem(s.path, s.line, f"duplicate of {first.path}:{first.line}: {s.text}"))
            continue
        seen[key] = s
        if s.spans:
            shape = _masked(s)
            twin = shapes.get(shape)
            if twin is not None:
                problems.append(
                    format_problem(s.path, s.line, f"differs from {twin.path}:{twin.line} only in its terms: {s.text}")
                )
            else:
                shapes[shape] = s
    return problems


def split_sentences(
    sentences: Sequence[Sentence], seed: int = 13, dev_share: float = 0.15, test_share: float = 0.15
) -> Dict[str, List[Sentence]]:
    """A seeded random split, stratified by domain and register.

    Most terms occur once or twice in the corpus, so a random split already
    leaves about half of the test terms unseen in train (the card reports the
    share, and a test holds it at 30% or more) while dev and test keep the
    corpus's mix of sentences with and without terms.
    """
    rng = random.Random(seed)
    groups: Dict[Tuple[str, str], List[Sentence]] = defaultdict(list)
    out: Dict[str, List[Sentence]] = {k: [] for k in SPLITS}
    for s in sorted(sentences, key=lambda s: (s.path, s.line)):
        if s.split is not None:
            out[s.split].append(s)
        else:
            groups[(s.domain, s.register)].append(s)
    carry = 0.0  # rounding carried across groups keeps the shares exact overall
    for key in sorted(groups):
        group = groups[key]
        rng.shuffle(group)
        n_test = round(test_share * len(group) + carry / 2)
        n_dev = round(dev_share * len(group) + carry / 2)
        carry += (dev_share + test_share) * len(group) - n_dev - n_test
        out["test"].extend(group[:n_test])
        out["dev"].extend(group[n_test : n_test + n_dev])
        out["train"].extend(group[n_test + n_dev :])
    for name in SPLITS:
        out[name].sort(key=lambda s: (s.path, s.line))
    return out


def to_iob2(sentences: Sequence[Sentence]) -> str:
    chunks = []
    for s in sentences:
        tags = spans_to_iob2(len(s.words), s.token_spans)
        chunks.append("".join(f"{w}\t{t}\n" for w, t in zip(s.words, tags)) + "\n")
    return "".join(chunks)


def unseen_share(splits: Dict[str, List[Sentence]], split: str = "test") -> Tuple[float, int, int]:
    """Share of distinct (case-folded) terms in `split` that never appear in train."""
    train_terms = {t.casefold() for s in splits["train"] for t in s.terms}
    terms = {t.casefold() for s in splits[split] for t in s.terms}
    unseen = terms - train_terms
    return (len(unseen) / len(terms) if terms else 0.0), len(unseen), len(terms)


def corpus_card(splits: Dict[str, List[Sentence]]) -> str:
    """The corpus card (corpus/README.md), computed from the split sentences."""
    rows = []
    for name in SPLITS:
        ss = splits[name]
        rows.append(
            (
                name,
                len(ss),
                sum(len(s.words) for s in ss),
                sum(len(s.token_spans) for s in ss),
                sum(not s.spans for s in ss),
                len({t.casefold() for s in ss for t in s.terms}),
            )
        )
    allss = [s for n in SPLITS for s in splits[n]]
    total = (
        "all",
        len(allss),
        sum(r[2] for r in rows),
        sum(r[3] for r in rows),
        sum(r[4] for r in rows),
        len({t.casefold() for s in allss for t in s.terms}),
    )
    share, n_unseen, n_test = unseen_share(splits)
    lengths = sorted(len(s.words) for s in allss)
    pinned = Counter(s.split for s in allss if s.split is not None)
    lines = [
        "# The embedded technology-term corpus",
        "",
        "Generated by `python scripts/build_corpus.py` from `corpus/sources/`; do not edit by hand.",
        "Original English sentences written for this project, annotated with one label, `TECH`, by the rules in",
        "[GUIDELINES.md](GUIDELINES.md). IOB2 files: `bio/train.tsv`, `bio/dev.tsv`, `bio/test.tsv` (token TAB tag).",
        "",
        "## Splits",
        "",
        "| split | sentences | tokens | TECH spans | sentences without a term | distinct terms |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]} ({r[4] / max(r[1], 1):.0%}) | {r[5]} |" for r in rows + [total]
    ]
    lines += [
        "",
        f"Generalisation: {n_unseen} of the {n_test} distinct terms in test ({share:.1%}) never appear in train "
        "(compared case-insensitively).",
        "",
        f"Sentence length: {lengths[0]} to {lengths[-1]} tokens, median {lengths[len(lengths) // 2]}.",
        "",
        "Pinned by `@split` (hard negatives, outside the seeded split): "
        + (", ".join(f"{n} sentences to {name}" for name, n in sorted(pinned.items())) or "none")
        + ".",
        "",
        "## Label distribution",
        "",
        "| label | train | dev | test |",
        "| --- | ---: | ---: | ---: |",
        f"| {LABEL} | " + " | ".join(str(sum(len(s.token_spans) for s in splits[n])) for n in SPLITS) + " |",
        "",
        "## Domains",
        "",
        "| domain | train | dev | test | TECH spans |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    domains = sorted({s.domain for s in allss})
    for d in domains:
        counts = [sum(s.domain == d for s in splits[n]) for n in SPLITS]
        spans = sum(len(s.token_spans) for s in allss if s.domain == d)
        lines.append(f"| {d} | " + " | ".join(map(str, counts)) + f" | {spans} |")
    lines += ["", "## Registers", "", "| register | sentences | share |", "| --- | ---: | ---: |"]
    reg = Counter(s.register for s in allss)
    lines += [f"| {r} | {reg[r]} | {reg[r] / len(allss):.0%} |" for r in REGISTERS]
    top = Counter(t for s in allss for t in s.terms).most_common(25)
    lines += ["", "## Most frequent terms", "", ", ".join(f"{t} ({n})" for t, n in top), ""]
    return "\n".join(lines)


def build(source_dir: Path, out_dir: Path, card_path: Optional[Path], nlp, seed: int = 13) -> Dict[str, List[Sentence]]:
    """Check the sources, then write `train/dev/test.tsv` and the card. RAISES CorpusError."""
    sentences, problems = read_sources(source_dir)
    problems += tokenise(sentences, nlp)
    problems += find_duplicates(sentences)
    if problems:
        raise CorpusError(problems)
    splits = split_sentences(sentences, seed=seed)
    for name in SPLITS:
        write_text_atomic(Path(out_dir) / f"{name}.tsv", to_iob2(splits[name]))
    if card_path is not None:
        write_text_atomic(card_path, corpus_card(splits))
    return splits


def build_heldout(
    source_dir: Path, out_dir: Path, stats_path: Optional[Path], nlp, corpus_dir: Optional[Path] = None
) -> Dict[str, List[Sentence]]:
    """A held-out set written by another hand (the "wild" set): each `<split>.txt` in source_dir, in the same
    markup, becomes `<split>.tsv` in out_dir, whole (no seeded split), and its counts go to stats_path.

    corpus_dir (Optional[Path]): The training sources; a held-out sentence that repeats one of them is a problem.
    RAISES CorpusError: markup, alignment or length problems, or a sentence seen in the training sources.
    """
    corpus, problems = read_sources(corpus_dir) if corpus_dir is not None else ([], [])
    heldout: Dict[str, List[Sentence]] = {}
    for path in sorted(Path(source_dir).glob("*.txt")):
        sentences: List[Sentence] = []
        problems += _read_file(path, sentences)
        problems += tokenise(sentences, nlp)
        heldout[path.stem] = sentences
    seen = {_dedup_key(s.text): s for s in corpus}
    for sentences in heldout.values():
        for s in sentences:
            twin = seen.get(_dedup_key(s.text))
            if twin is not None:
                problems.append(
                    format_problem(s.path, s.line, f"repeats {twin.path}:{twin.line} of the training sources")
                )
    if not heldout:
        problems.append(format_problem(str(source_dir), None, "no *.txt source files"))
    if problems:
        raise CorpusError(problems)
    for name, sentences in heldout.items():
        write_text_atomic(Path(out_dir) / f"{name}.tsv", to_iob2(sentences))
    if stats_path is not None:
        write_text_atomic(stats_path, heldout_stats(heldout))
    return heldout


def heldout_stats(heldout: Dict[str, List[Sentence]]) -> str:
    """Counts of a held-out set by split and register, as Markdown."""
    lines = [
        "# Counts (generated by `python scripts/build_corpus.py`; do not edit by hand)",
        "",
        "| split | sentences | tokens | TECH spans | sentences without a term | distinct terms |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, ss in heldout.items():
        negatives = sum(not s.spans for s in ss)
        lines.append(
            f"| {name} | {len(ss)} | {sum(len(s.words) for s in ss)} | {sum(len(s.spans) for s in ss)} | "
            f"{negatives} ({negatives / max(len(ss), 1):.0%}) | {len({t.casefold() for s in ss for t in s.terms})} |"
        )
    registers = [r for r in REGISTERS if any(s.register == r for ss in heldout.values() for s in ss)]
    lines += ["", "| register | " + " | ".join(heldout) + " | TECH spans |", "| --- |" + " ---: |" * (len(heldout) + 1)]
    for r in registers:
        counts = [sum(s.register == r for s in ss) for ss in heldout.values()]
        spans = sum(len(s.spans) for ss in heldout.values() for s in ss if s.register == r)
        lines.append(f"| {r} | " + " | ".join(map(str, counts)) + f" | {spans} |")
    return "\n".join(lines) + "\n"
