"""The pipeline's tokenizer: spaCy's English tokenizer that keeps technology terms whole.

spaCy splits `C#` into `C` `#` and `x86-64` into `x86` `-` `64`, keeps a
sentence-final period on a term that ends in a capital ("USB-C.", "5G.",
"Wi-Fi 6E."), and cuts command-line flags and version strings at their
hyphens. The corpus is tokenised with this tokenizer and the packaged pipeline
ships it, so training and inference see the same tokens. (`C++`, `.NET`,
`Node.js` are already whole.) A number and its unit are two tokens, written
together or apart ("3nm" and "3 nm" both give `3` `nm`): spaCy's rule, kept.
"""

import re
from typing import Callable, Iterable

import spacy
from spacy.lang.en import English
from spacy.language import Language
from spacy.symbols import ORTH
from spacy.tokenizer import Tokenizer
from spacy.tokens import Doc
from spacy.util import registry

TECH_SPECIAL_CASES = (
    "C#",
    "F#",
    "J#",
    "c#",
    "f#",
    "x86-64",
    "x86_64",
    "X86-64",
    "amd64",
    "AMD64",
    "C++",
    "c++",
    "C++11",
    "C++14",
    "C++17",
    "C++20",
    "C++23",
    ".NET",
    ".net",
    "ASP.NET",
    "VB.NET",
    "ADO.NET",
    "Node.js",
    "node.js",
    "Vue.js",
    "Next.js",
    "Nuxt.js",
    "Express.js",
    "Three.js",
    "D3.js",
    "Chart.js",
)


# spaCy keeps "C." and "R." whole as initials; in technology text they end sentences about the languages.
SPLIT_PERIOD_CASES = ("C.", "R.")


# A period after a capital letter that follows a letter, digit, hyphen or plus ends the sentence ("USB-C.",
# "5G.", "6E."); dotted abbreviations ("U.S.", "A.I.") and initials ("J.") keep theirs.
PERIOD_AFTER_CAPITAL = r"(?<=[A-Za-z0-9+-][A-Z])\."
# Whole tokens: command-line flags ("--legacy-xml", "-Xmx4g", "--port=8080") and version strings ("v1.2.3-rc1").
# A version's pre-release tag holds a digit or is a pre-release word, so "1.5-tesla" still splits.
_PRERELEASE = r"(?:[A-Za-z]*\d[0-9A-Za-z]*|alpha|beta|rc|dev|pre|preview|snapshot|SNAPSHOT)"
FLAG_OR_VERSION = re.compile(
    r"^(?:--?[A-Za-z][\w.-]*\w(?:=[\w./:-]+)?"  # --legacy-xml, -Xmx4g, --port=8080
    rf"|v?\d+(?:\.\d+)+(?:-{_PRERELEASE}(?:\.{_PRERELEASE})*)?)$"  # 3.12.1, v1.2.3-rc1, 17.4.1-beta
)


def add_tech_rules(tokenizer: Tokenizer) -> None:
    """Split a period after a capital letter off a token; keep flags and version strings whole.

    Both rules extend the tokenizer's compiled patterns, so they are saved with the pipeline (spaCy stores
    the patterns, not the functions) and a loaded pipeline tokenises as the corpus was tokenised.
    """
    suffix = tokenizer.suffix_search.__self__.pattern
    tokenizer.suffix_search = re.compile(f"{suffix}|(?:{PERIOD_AFTER_CAPITAL})$").search
    if tokenizer.token_match is None:
        tokenizer.token_match = FLAG_OR_VERSION.match
    else:
        own = tokenizer.token_match.__self__.pattern
        tokenizer.token_match = re.compile(f"(?:{own})|(?:{FLAG_OR_VERSION.pattern})").match


def add_tech_special_cases(tokenizer: Tokenizer, cases: Iterable[str] = TECH_SPECIAL_CASES) -> None:
    """Make each string in `cases` one token wherever it stands alone or before punctuation."""
    for case in cases:
        tokenizer.add_special_case(case, [{ORTH: case}])
    for case in SPLIT_PERIOD_CASES:
        tokenizer.add_special_case(case, [{ORTH: case[:-1]}, {ORTH: "."}])


@registry.tokenizers("tech_ner.Tokenizer.v1")
def create_tech_tokenizer() -> Callable[[Language], Tokenizer]:
    """spaCy's default tokenizer plus the rules of `add_tech_rules` and TECH_SPECIAL_CASES."""
    base = registry.tokenizers.get("spacy.Tokenizer.v1")()

    def make(nlp: Language) -> Tokenizer:
        tokenizer = base(nlp)
        add_tech_rules(tokenizer)
        add_tech_special_cases(tokenizer)
        return tokenizer

    return make


def tech_blank(lang: str = "en") -> Language:
    """A blank pipeline with the project's tokenizer."""
    return spacy.blank(lang, config={"nlp": {"tokenizer": {"@tokenizers": "tech_ner.Tokenizer.v1"}}})


class TechEnglish(English):
    """English that rejects input other than text with a TypeError (spaCy raises ValueError E1041)."""

    def _ensure_doc(self, doc_like):
        if not isinstance(doc_like, (str, Doc, bytes)):
            raise TypeError(
                f"en_tech_ner takes text (str), a Doc or Doc bytes, not {type(doc_like).__name__}: "
                "convert the value with str() first, or skip it"
            )
        return super()._ensure_doc(doc_like)


@registry.callbacks("tech_ner.checked_input.v1")
def configure_checked_input():
    """`[nlp] after_creation` callback: non-text input raises a clear TypeError."""

    def apply(nlp: Language) -> Language:
        if type(nlp) is English:
            nlp.__class__ = TechEnglish
        return nlp

    return apply
