"""Import this module to register every config function the project's pipelines use."""
from . import backbone, span_getters, tokenizer  # noqa: F401
