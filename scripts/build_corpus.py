"""Build the embedded corpus from corpus/sources (see `tech-ner build-corpus --help`)."""

import typer

from tech_ner.commands.build_corpus import build_corpus_command

if __name__ == "__main__":
    typer.run(build_corpus_command)
