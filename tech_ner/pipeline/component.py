"""The `tech_terms` pipeline component: technology terms of a document.

Runs after `ner` (or an `entity_ruler`) and adds three extension attributes,
all getters computed from `doc.ents`, so they are always consistent with the
entities, cost nothing to store and survive `Doc.to_bytes`, `DocBin` and
`nlp.pipe(texts, n_process=2)`:

* `Doc._.tech_terms` (List[TechTerm]): the distinct terms, in order of first
  appearance, deduplicated ignoring case and whitespace.
* `Span._.is_tech` (bool): whether the span is exactly an entity with a tech label.
* `Token._.is_tech` (bool): whether the token is inside an entity with a tech label.

The names are configurable (`attrs`), like spacymoji's. Extensions are global
to the process, so a second pipeline may reuse a name only with the same
definition (same `labels` and `min_count`); otherwise it raises a ValueError
instead of overwriting the first pipeline's attribute.

This file imports only its sibling runtime files (relatively): the package step ships the runtime
subpackage `tech_ner.pipeline` whole inside the pipeline package (tech_ner/packaging/runtime.py).
"""

from dataclasses import dataclass, field
from typing import Any, Dict, FrozenSet, Iterable, List, Optional, Sequence, Tuple

from spacy.language import Language
from spacy.tokens import Doc, Span, Token

from .factories import register_factory_once

FACTORY_NAME = "tech_terms"
FACTORY_VERSION = "tech_ner.tech_terms.v1"
DEFAULT_LABELS: Tuple[str, ...] = ("TECH",)
DEFAULT_ATTRS: Tuple[str, str, str] = ("tech_terms", "is_tech", "is_tech")


@dataclass
class TechTerm:
    """One distinct technology term of a document.

    text (str): The text of its first mention, as written.
    key (str): The normalised form used for deduplication (casefolded, whitespace collapsed).
    count (int): How many entities mention it.
    offsets (List[Tuple[int, int]]): Character offsets `(start, end)` of every mention, in document order.
    labels (List[str]): Distinct entity labels of its mentions, in order of first appearance.
    """

    text: str
    key: str
    count: int = 0
    offsets: List[Tuple[int, int]] = field(default_factory=list)
    labels: List[str] = field(default_factory=list)

    def __str__(self) -> str:
        return self.text

    @property
    def label(self) -> str:
        """RETURNS (str): The label of the first mention."""
        return self.labels[0]

    def to_dict(self) -> Dict[str, Any]:
        """RETURNS (Dict[str, Any]): The term as JSON-serialisable plain data."""
        return {
            "text": self.text,
            "key": self.key,
            "count": self.count,
            "offsets": [list(o) for o in self.offsets],
            "labels": list(self.labels),
        }


def normalize_term(text: str) -> str:
    """The deduplication key of a term: whitespace collapsed to single spaces, casefolded.

    text (str): The text of a mention.
    RETURNS (str): The key; "" if the text is only whitespace.
    """
    return " ".join(text.split()).casefold()


def collect_terms(
    ents: Iterable[Span], *, labels: Optional[Iterable[str]] = None, min_count: int = 1
) -> List[TechTerm]:
    """Group entities into distinct terms, in order of first appearance.

    ents (Iterable[Span]): Entity spans, in document order.
    labels (Optional[Iterable[str]]): Labels to keep; None keeps every label.
    min_count (int): Drop terms mentioned fewer times than this.
    RETURNS (List[TechTerm]): The distinct terms.
    """
    wanted = None if labels is None else frozenset(labels)
    terms: Dict[str, TechTerm] = {}
    for ent in ents:
        if wanted is not None and ent.label_ not in wanted:
            continue
        key = normalize_term(ent.text)
        if not key:  # an entity made only of whitespace names no term
            continue
        term = terms.get(key)
        if term is None:
            term = terms[key] = TechTerm(text=ent.text, key=key)
        term.count += 1
        term.offsets.append((ent.start_char, ent.end_char))
        if ent.label_ not in term.labels:
            term.labels.append(ent.label_)
    return [t for t in terms.values() if t.count >= min_count]


class _Getter:
    """Base of the extension getters: module-level, so they pickle (spawned
    `nlp.pipe` workers receive the extension state pickled), and compared by
    definition rather than identity, so re-creating a pipeline, or a second copy
    of this file in a pipeline package, counts as the same
    extension.
    """

    def __init__(self, labels: Optional[FrozenSet[str]], min_count: int = 1):
        self.labels = labels
        self.min_count = min_count

    def definition(self) -> Tuple[Any, ...]:
        labels = None if self.labels is None else tuple(sorted(self.labels))
        return ("tech_ner", type(self).__name__, labels, self.min_count)

    def __eq__(self, other: object) -> bool:
        definition = getattr(other, "definition", None)
        return callable(definition) and definition() == self.definition()

    def __hash__(self) -> int:
        return hash(self.definition())

    def __repr__(self) -> str:
        _, name, labels, min_count = self.definition()
        return f"{name}(labels={labels!r}, min_count={min_count})"

    def _wanted(self, label: str) -> bool:
        return self.labels is None or label in self.labels


class DocTermsGetter(_Getter):
    def __call__(self, doc: Doc) -> List[TechTerm]:
        return collect_terms(doc.ents, labels=self.labels, min_count=self.min_count)


class SpanIsTechGetter(_Getter):
    def __call__(self, span: Span) -> bool:
        for ent in span.doc.ents:
            if ent.start == span.start and ent.end == span.end:
                return self._wanted(ent.label_)
            if ent.start >= span.end:
                break
        return False


class TokenIsTechGetter(_Getter):
    def __call__(self, token: Token) -> bool:
        # ent_iob: 1 = I, 3 = B (2 = O, 0 = not annotated)
        return token.ent_iob in (1, 3) and self._wanted(token.ent_type_)


def _is_registered(cls: Any, name: str, getter: "_Getter") -> bool:
    """Whether `cls._.name` is already registered with `getter`'s definition.

    RETURNS (bool): True if so, False if the name is free.
    Raises ValueError if the name is taken by a different definition.
    """
    if not cls.has_extension(name):
        return False
    default, method, existing, setter = cls.get_extension(name)
    if existing == getter and default is None and method is None and setter is None:
        return True
    raise ValueError(
        f"[tech_terms] {cls.__name__}._.{name} is already registered with a different definition "
        f"(getter={existing!r}, default={default!r}, method={method!r}, setter={setter!r}); "
        f"this component needs getter={getter!r}. Extensions are global, so choose other "
        f'names with the `attrs` setting, e.g. attrs=["my_terms", "my_is_tech", "my_is_tech"].'
    )


def _register_all(extensions: List[Tuple[Any, str, "_Getter"]]) -> None:
    """Register each `(cls, name, getter)` once; check them all first so a
    conflict leaves nothing half-registered."""
    todo = [(cls, name, getter) for cls, name, getter in extensions if not _is_registered(cls, name, getter)]
    for cls, name, getter in todo:
        cls.set_extension(name, getter=getter)


def _check_attrs(attrs: Any) -> Tuple[str, str, str]:
    attrs = tuple(attrs) if isinstance(attrs, (list, tuple)) else attrs
    if not (
        isinstance(attrs, tuple) and len(attrs) == 3 and all(isinstance(a, str) and a.isidentifier() for a in attrs)
    ):
        raise ValueError(
            "[tech_terms] attrs must be three attribute names (identifiers) for "
            f"(Doc terms, Span flag, Token flag), e.g. {list(DEFAULT_ATTRS)}; got {attrs!r}"
        )
    return attrs


def _check_labels(labels: Any) -> Optional[FrozenSet[str]]:
    if labels is None:
        return None
    if isinstance(labels, str):
        raise ValueError(
            f"[tech_terms] labels must be a list of labels, not a string: got {labels!r}; use [{labels!r}]"
        )
    labels = list(labels)
    bad = [lab for lab in labels if not isinstance(lab, str) or not lab.strip()]
    if bad:
        raise ValueError(f"[tech_terms] labels must be non-empty strings; got {bad!r}")
    return frozenset(labels) or None


class TechTerms:
    """Adds the technology terms of each document as extension attributes.

    The component itself changes nothing on the Doc: the attributes are
    getters over `doc.ents`, registered when the component is created.
    """

    def __init__(
        self,
        nlp: Language,
        name: str = "tech_terms",
        *,
        labels: Optional[List[str]] = None,
        attrs: Sequence[str] = DEFAULT_ATTRS,
        min_count: int = 1,
    ):
        """Register the extensions.

        nlp (Language): The pipeline.
        name (str): The component's name in the pipeline.
        labels (Optional[List[str]]): Entity labels that count as technology terms;
            None or empty means every entity label.
        attrs (Sequence[str]): Names of the Doc list of terms, the Span flag and the Token flag.
        min_count (int): Leave out of the Doc list terms mentioned fewer times than this.
        """
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise ValueError(f"[tech_terms] min_count must be an integer >= 1; got {min_count!r}")
        self.name = name
        self.wanted = _check_labels(labels)  # None: every label
        self.attrs = _check_attrs(attrs)
        self.min_count = min_count
        doc_attr, span_attr, token_attr = self.attrs
        _register_all(
            [
                (Doc, doc_attr, DocTermsGetter(self.wanted, min_count)),
                (Span, span_attr, SpanIsTechGetter(self.wanted)),
                (Token, token_attr, TokenIsTechGetter(self.wanted)),
            ]
        )

    @property
    def labels(self) -> Tuple[str, ...]:
        """RETURNS (Tuple[str, ...]): The labels that count as technology terms, sorted; () means every label
        (spaCy's `nlp.pipe_labels` lists each component's `labels`)."""
        return tuple(sorted(self.wanted)) if self.wanted is not None else ()

    def __call__(self, doc: Doc) -> Doc:
        """Process one document; the attributes are computed when read.

        doc (Doc): The document, with entities set by an earlier component.
        RETURNS (Doc): The same document.
        """
        if not isinstance(doc, Doc):
            raise TypeError(f"[tech_terms] expected a spaCy Doc, got {type(doc).__name__}")
        return doc

    def terms(self, doc: Doc) -> List[TechTerm]:
        """The distinct terms of `doc` under this component's settings.

        doc (Doc): The document.
        RETURNS (List[TechTerm]): Same as reading the Doc attribute.
        """
        return collect_terms(doc.ents, labels=self.wanted, min_count=self.min_count)


def make_tech_terms(
    nlp: Language,
    name: str,
    labels: Optional[List[str]],
    attrs: Sequence[str],
    min_count: int,
) -> TechTerms:
    """Create the `tech_terms` component (`nlp.add_pipe("tech_terms", after="ner")`).

    labels (Optional[List[str]]): Entity labels that count as technology terms; null or [] means all.
    attrs (Sequence[str]): Names of the `Doc._` list of terms, the `Span._` flag and the `Token._` flag.
        (A list, not a Tuple type: a config read back from disk gives a list, which
        confection would reject for Tuple[str, str, str].)
    min_count (int): Leave out of the Doc list terms mentioned fewer times than this.
    RETURNS (TechTerms): The component.
    """
    return TechTerms(nlp, name, labels=labels, attrs=attrs, min_count=min_count)


# One process may import two copies of this file (the package's and tech_ner's): see factories.py.
register_factory_once(
    FACTORY_NAME,
    FACTORY_VERSION,
    make_tech_terms,
    # `assigns` names the default attrs; a pipeline that renames them assigns those instead
    requires=["doc.ents"],
    assigns=[f"doc._.{DEFAULT_ATTRS[0]}", f"span._.{DEFAULT_ATTRS[1]}", f"token._.{DEFAULT_ATTRS[2]}"],
    default_config={"labels": list(DEFAULT_LABELS), "attrs": list(DEFAULT_ATTRS), "min_count": 1},
)
