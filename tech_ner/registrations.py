"""Import this module (or pass it to `spacy ... --code`) to register every config function the project uses."""
import tech_ner.backbone  # noqa: F401
import tech_ner.span_getters  # noqa: F401
import tech_ner.tokenizer  # noqa: F401
import tech_ner.component  # noqa: F401
import tech_ner.bio_ner  # noqa: F401
import tech_ner.term_rules  # noqa: F401
import tech_ner.precision  # noqa: F401
import tech_ner.optimizers  # noqa: F401
