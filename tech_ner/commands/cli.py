"""`tech-ner`: the project's command line, one command per step of the data path. Each command wires options to
the package; `scripts/` holds the same commands for `spacy project run`."""

import typer

from .convert import convert_command, split_command, to_bio_command
from .build_corpus import build_corpus_command
from .prepare import prepare_command
from .calibrate import calibrate_command
from .evaluate import evaluate_command
from .extract import extract_command
from .package import package_command
from .serve import serve_command
from .train import CONTEXT_SETTINGS, train_command

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Technology-term NER: corpora, training, evaluation, packaging, extraction and serving.",
)
# in the order of the data path: corpus in -> training -> evaluation -> package -> inference apps
app.command("build-corpus")(build_corpus_command)
app.command("convert")(convert_command)
app.command("prepare")(prepare_command)
app.command("to-bio")(to_bio_command)
app.command("split")(split_command)
app.command("train", context_settings=CONTEXT_SETTINGS)(train_command)
app.command("calibrate")(calibrate_command)
app.command("evaluate")(evaluate_command)
app.command("package")(package_command)
app.command("extract")(extract_command)
app.command("serve")(serve_command)


def main() -> None:  # console script entry point
    app()


if __name__ == "__main__":
    main()
