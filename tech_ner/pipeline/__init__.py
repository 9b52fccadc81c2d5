"""Everything a trained pipeline needs at run time: importing this package registers it with spaCy.

The components (`bio_ner`, `term_rules`, `tech_terms`, `cpu_precision`), the backbone resolver, the tokenizer, the span
getter and the tag decoding. The package step ships this folder whole inside the pipeline package, so it
imports nothing else from `tech_ner`, only its own modules (relatively); tests/test_package.py checks it.
"""

from . import backbone, bio_ner, component, precision, span_getters, term_rules, tokenizer  # noqa: F401  (registrations)
