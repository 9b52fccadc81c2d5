"""The pipeline's tokenizer: spaCy's English tokenizer that keeps technology terms whole.

spaCy splits `C#` into `C` `#` and `x86-64` into `x86` `-` `64`. The corpus is
tokenised with this tokenizer and the packaged pipeline ships it, so training
and inference see the same tokens. (`C++`, `.NET`, `Node.js` are already whole.)
"""
from typing import Callable, Iterable

import spacy
from spacy.language import Language
from spacy.symbols import ORTH
from spacy.tokenizer import Tokenizer
from spacy.util import registry

TECH_SPECIAL_CASES = (
    "C#", "F#", "J#", "c#", "f#",
    "x86-64", "x86_64", "X86-64", "amd64", "AMD64",
    "C++", "c++", "C++11", "C++14", "C++17", "C++20", "C++23",
    ".NET", ".net", "ASP.NET", "VB.NET", "ADO.NET",
    "Node.js", "node.js", "Vue.js", "Next.js", "Nuxt.js", "Express.js", "Three.js", "D3.js", "Chart.js",
)


# spaCy keeps "C." and "R." whole as initials; in technology text they end sentences about the languages.
SPLIT_PERIOD_CASES = ("C.", "R.")


def add_tech_special_cases(tokenizer: Tokenizer, cases: Iterable[str] = TECH_SPECIAL_CASES) -> None:
    """Make each string in `cases` one token wherever it stands alone or before punctuation."""
    for case in cases:
        tokenizer.add_special_case(case, [{ORTH: case}])
    for case in SPLIT_PERIOD_CASES:
        tokenizer.add_special_case(case, [{ORTH: case[:-1]}, {ORTH: "."}])


@registry.tokenizers("tech_ner.Tokenizer.v1")
def create_tech_tokenizer() -> Callable[[Language], Tokenizer]:
    """spaCy's default tokenizer plus TECH_SPECIAL_CASES."""
    base = registry.tokenizers.get("spacy.Tokenizer.v1")()

    def make(nlp: Language) -> Tokenizer:
        tokenizer = base(nlp)
        add_tech_special_cases(tokenizer)
        return tokenizer

    return make


def tech_blank(lang: str = "en") -> Language:
    """A blank pipeline with the project's tokenizer."""
    return spacy.blank(lang, config={"nlp": {"tokenizer": {"@tokenizers": "tech_ner.Tokenizer.v1"}}})
