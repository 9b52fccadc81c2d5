"""BIO tag parsing and decoding into entity spans, with a documented repair rule.

Accepted schemes: IOB1, IOB2, BIOES (E-/S-) and BILOU (L-/U-), prefixes in any
case (`b-tech` is `B-tech`). Decoding is the same for IOB1 and IOB2:

- `B-X` always begins an entity of label X.
- `I-X` continues the open entity if it has label X; otherwise it begins a new
  entity of label X. In IOB2 input that is ill-formed (I- after O, or I-X after
  B-Y/I-Y) and is counted as a repair; in IOB1 input it is the normal way an
  entity begins. This is the conlleval / seqeval (default mode) reading.
- BIOES/BILOU: `S-X`/`U-X` is a one-token entity, `E-X`/`L-X` closes the open X
  entity. An E- or I- with no open entity of its label begins one (repair); an
  entity left open by the next tag is closed there (repair).
"""

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

# Prefix letter -> role. L/U are BILOU spellings of E/S.
_ROLES = {"B": "B", "I": "I", "E": "E", "L": "E", "S": "S", "U": "S"}
OUTSIDE = ("O", "")
Span = Tuple[int, int, str]  # start token, end token (exclusive), label


class TagError(ValueError):
    """A tag that cannot be read. The message says what the tag should look like."""


_parse_cache: Dict[str, Tuple[str, str]] = {}


def parse_tag(tag: str) -> Tuple[str, str]:
    """Split a tag into (role, label). Role is one of O, B, I, E, S.

    tag (str): e.g. "B-TECH", "i-tech", "O", "S-LOC".
    RETURNS (Tuple[str, str]): ("O", "") for outside tags.
    """
    cached = _parse_cache.get(tag)
    if cached is not None:
        return cached
    if tag == "":
        raise TagError("empty tag: every token needs a tag such as O or B-TECH")
    if tag in ("O", "o"):
        result = OUTSIDE
    else:
        if len(tag) < 3 or tag[1] != "-":
            raise TagError(
                f"tag {tag!r} is not O and has no B-/I-/E-/S-/L-/U- prefix (expected tags like O, B-TECH, I-TECH)"
            )
        role = _ROLES.get(tag[0].upper())
        if role is None:
            raise TagError(
                f"tag {tag!r} has the unknown prefix {tag[:2]!r} (known prefixes: B-, I-, E-, S-, L-, U-, in any case)"
            )
        label = tag[2:]
        if not label.strip() or label != label.strip():
            raise TagError(f"tag {tag!r} has an empty or padded label after its prefix")
        result = (role, label)
    if len(_parse_cache) < 10_000:
        _parse_cache[tag] = result
    return result


@dataclass
class Irregularity:
    """Where a tag sequence departs from well-formed IOB2/BIOES."""

    index: int  # token index in the sentence
    kind: str  # "i_start" | "bioes_open" | "bioes_unclosed"
    message: str


def decode(parsed: Sequence[Tuple[str, str]], tags: Sequence[str]) -> Tuple[List[Span], List[Irregularity], int]:
    """Decode parsed tags into spans.

    parsed (Sequence[Tuple[str, str]]): (role, label) per token, from parse_tag.
    tags (Sequence[str]): The raw tags, for messages.
    RETURNS (Tuple[List[Span], List[Irregularity], int]): the spans, the
        irregularities met, and how many B- tags began an entity without
        following a token of the same label (0 in every IOB1 file).
    """
    spans: List[Span] = []
    issues: List[Irregularity] = []
    b_fresh = 0
    start: Optional[int] = None
    label = ""
    closed = False  # BIOES: the open entity already met its E- tag
    prev_label: Optional[str] = None
    for i, (role, lab) in enumerate(parsed):
        if role == "I" or role == "E":
            if start is not None and lab == label and not closed:
                if role == "E":
                    closed = True
                prev_label = lab
                continue
            _close(spans, start, i, label)
            prev = tags[i - 1] if i else None
            what = "the sentence start" if prev is None else repr(prev)
            kind = "i_start" if role == "I" else "bioes_open"
            issues.append(Irregularity(i, kind, f"{tags[i]!r} follows {what}; it begins a new {lab} entity"))
            start, label, closed = i, lab, role == "E"
        elif role == "B" or role == "S":
            _close(spans, start, i, label)
            if prev_label != lab:
                b_fresh += 1
            start, label, closed = i, lab, role == "S"
        else:
            _close(spans, start, i, label)
            start = None
        prev_label = lab if role != "O" else None
    _close(spans, start, len(parsed), label)
    return spans, issues, b_fresh


def _close(spans: List[Span], start: Optional[int], end: int, label: str) -> None:
    if start is not None:
        spans.append((start, end, label))


def uses_bioes(parsed: Sequence[Tuple[str, str]]) -> bool:
    return any(role in ("E", "S") for role, _ in parsed)


def unclosed_bioes(parsed: Sequence[Tuple[str, str]], spans: Sequence[Span], tags: Sequence[str]) -> List[Irregularity]:
    """In BIOES input, multi-token entities must end in E- and single ones be S-."""
    issues = []
    for start, end, _ in spans:
        last_role = parsed[end - 1][0]
        first_role = parsed[start][0]
        if end - start == 1 and first_role == "B":
            issues.append(
                Irregularity(
                    start, "bioes_unclosed", f"{tags[start]!r} is a one-token entity not tagged S-; read as one token"
                )
            )
        elif end - start > 1 and last_role != "E":
            issues.append(
                Irregularity(
                    end - 1, "bioes_unclosed", f"entity ending at {tags[end - 1]!r} has no E- tag; it ends there"
                )
            )
    return issues


def spans_to_iob2(n: int, spans: Sequence[Span]) -> List[str]:
    """IOB2 tags for n tokens from non-overlapping spans."""
    tags = ["O"] * n
    for start, end, label in spans:
        tags[start] = "B-" + label
        for i in range(start + 1, end):
            tags[i] = "I-" + label
    return tags
