"""The `term_rules` pipeline component: the guideline's never-a-term rules, applied to predicted entities.

A recogniser trained on prose sometimes tags what GUIDELINES.md says is never a technology term on its own (section
2, 4.1 and 4.10): a bare number or version ("port 9102", "upgrade to 3.12"), a commit hash ("a3f9c21"), a file name
or path ("http_client.py", "/healthz"), and a command-line flag hanging off a tool's name ("python3 -m"). These
are spellings, which an uncased backbone reads poorly and a rule reads exactly. Placed after `ner`, this component:

* drops an entity whose every token is a number, version, hash or punctuation (`identifiers`);
* drops an entity that is one file name or path (`paths`);
* trims flags and dangling hyphens or punctuation from an entity's end (`edges`): "[python3] -m venv".

Only entities with one of `labels` are touched (default TECH), so another label set (a user's "File_Name" type)
is left alone. Each rule can be switched off in the config.

Part of the runtime (`tech_ner.pipeline`): it imports only its sibling modules.
"""

import re
from typing import Iterable, List, Optional, Sequence

from spacy.language import Language
from spacy.tokens import Doc, Span

from .factories import register_factory_once

FACTORY_NAME = "term_rules"
FACTORY_VERSION = "tech_ner.term_rules.v1"
RULES = ("identifiers", "paths", "edges")

# a number, a version (v2, 3.12, 4.17.21, 1.0.0-rc1), or a hex hash of 7-40 characters with a digit and a letter
_NUMBER = re.compile(r"v?\d+([.,]\d+)*([-+._]?(rc|alpha|beta|a|b|dev|post)\d*)?", re.IGNORECASE)
_HASH = re.compile(r"(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}")
# a path (has a slash) or a lowercase file name with an extension of code, config or text (not "Node.js": .js
# names frameworks, and a capital marks a name)
_PATH = re.compile(
    r"\S*/\S*|[a-z0-9_][a-z0-9_\-]*\.(py|pyi|ipynb|json|ya?ml|toml|cfg|ini|env|md|rst|txt|lock|log|sh"
    r"|rs|go|java|kt|rb|php|html?|css|scss|tsx?|jsx|c|h|cc|cpp|hpp|cs|swift|sql|xml|csv|conf)"
)
_FLAG = re.compile(r"-{1,2}[A-Za-z][\w-]*|-+")
_TRAILING_PUNCT = re.compile(r"[^\w+#)\]]+")


def is_identifier(token_text: str) -> bool:
    """A number, version, hash or punctuation: never a term on its own."""
    return bool(
        _NUMBER.fullmatch(token_text) or _HASH.fullmatch(token_text) or not any(c.isalnum() for c in token_text)
    )


def is_path(span: Span) -> bool:
    """One file name or path (the span's text without spaces)."""
    return bool(_PATH.fullmatch(span.text)) and not any(c.isspace() for c in span.text)


def trimmed_end(span: Span) -> int:
    """The end of `span` without trailing flags, dangling hyphens or punctuation (at least one token kept)."""
    end = span.end
    while end - 1 > span.start and (
        _FLAG.fullmatch(span.doc[end - 1].text) or _TRAILING_PUNCT.fullmatch(span.doc[end - 1].text)
    ):
        end -= 1
    return end


class TermRules:
    """Applies the never-a-term rules to `doc.ents` (see the module docstring)."""

    def __init__(self, name: str, labels: Sequence[str], rules: Sequence[str]) -> None:
        unknown = sorted(set(rules) - set(RULES))
        if unknown:
            raise ValueError(f"[term_rules] unknown rules {unknown}: expected some of {', '.join(RULES)}")
        self.name = name
        self.labels = frozenset(labels)
        self.rules = frozenset(rules)

    def keep(self, ent: Span) -> Optional[Span]:
        """The entity as the rules leave it, or None when it goes."""
        if ent.label_ not in self.labels:
            return ent
        if "edges" in self.rules:
            end = trimmed_end(ent)
            if end != ent.end:
                ent = Span(ent.doc, ent.start, end, label=ent.label, kb_id=ent.kb_id)
        if "identifiers" in self.rules and all(is_identifier(t.text) for t in ent):
            return None
        if "paths" in self.rules and is_path(ent):
            return None
        return ent

    def __call__(self, doc: Doc) -> Doc:
        kept: List[Span] = [e for e in (self.keep(ent) for ent in doc.ents) if e is not None]
        if len(kept) != len(doc.ents) or any(a.end != b.end for a, b in zip(kept, doc.ents)):
            doc.set_ents(kept, default="outside")
        return doc

    def pipe(self, docs: Iterable[Doc], batch_size: int = 128) -> Iterable[Doc]:
        for doc in docs:
            yield self(doc)


def make_term_rules(nlp: Language, name: str, labels: List[str], rules: List[str]) -> TermRules:
    """Create the `term_rules` component (`nlp.add_pipe("term_rules", after="ner")`); see `TermRules`."""
    return TermRules(name, labels, rules)


register_factory_once(
    FACTORY_NAME,
    FACTORY_VERSION,
    make_term_rules,
    assigns=["doc.ents"],
    requires=["doc.ents"],
    default_config={"labels": ["TECH"], "rules": list(RULES)},
)
