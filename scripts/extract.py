"""Extract technology terms from a corpus: `python scripts/extract.py INPUTS... -o out.jsonl --model training/model-best`."""

import typer

from tech_ner.commands.extract import extract_command

if __name__ == "__main__":
    typer.run(extract_command)
