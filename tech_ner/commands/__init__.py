"""`tech-ner`: every command of the project, each wiring options to the package."""
