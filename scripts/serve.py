"""Serve the web page and HTTP API for extracting technology terms (see `tech-ner serve --help`)."""

import typer

from tech_ner.commands.serve import serve_command

if __name__ == "__main__":
    typer.run(serve_command)
