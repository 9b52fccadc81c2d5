"""tech_ner: BIO corpora, training and packaging for the en_tech_ner technology-term recogniser."""

__version__ = "0.1.0"
