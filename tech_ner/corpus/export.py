"""DocBin corpora back out: IOB2 files, and a seeded train/dev/test split."""

import math
import random
from pathlib import Path
from typing import Dict, Sequence

import spacy
from spacy.tokens import DocBin

from ..files.atomic import atomic_path
from .docbin import DOCBIN_ATTRS, docbin_paths, doc_to_iob2, read_docs
from ..files.problems import InputError, check_output, same_file

EXPORT_FORMATS = ("two_column", "conll2003")


def export_iob(inputs: Sequence[Path], output: Path, *, fmt: str = "two_column", sep: str = "\t") -> Dict[str, int]:
    """Write the docs of DocBin files as an IOB2 file.

    fmt (str): "two_column" (`token<sep>TAG`, a blank line after each sentence)
        or "conll2003" (`token -X- -X- TAG`, a `-DOCSTART-` line before each document).
    RETURNS (Dict[str, int]): documents, sentences and tokens written.
    """
    if fmt not in EXPORT_FORMATS:
        raise InputError(None, None, f"--format {fmt!r}: use one of {', '.join(EXPORT_FORMATS)}")
    same_file(output, docbin_paths(inputs))
    check_output(output)
    counts = {"documents": 0, "sentences": 0, "tokens": 0}
    with atomic_path(output) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            for doc in read_docs(inputs):
                counts["documents"] += 1
                if fmt == "conll2003":
                    f.write("-DOCSTART- -X- -X- O\n\n")
                for sent in doc_to_iob2(doc):
                    counts["sentences"] += 1
                    counts["tokens"] += len(sent)
                    if fmt == "conll2003":
                        f.write("".join(f"{w} -X- -X- {t}\n" for w, t in sent))
                    else:
                        f.write("".join(f"{w}{sep}{t}\n" for w, t in sent))
                    f.write("\n")
    return counts


def split_corpus(
    inputs: Sequence[Path], out_dir: Path, *, ratios: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
) -> Dict[str, int]:
    """Shuffle documents with a seed and write train/dev/test.spacy.

    RETURNS (Dict[str, int]): documents per split.
    """
    if len(ratios) != 3 or not all(math.isfinite(r) and r >= 0 for r in ratios) or abs(sum(ratios) - 1.0) > 1e-6:
        raise InputError(
            None, None, f"--ratios {ratios}: give three non-negative numbers that sum to 1, e.g. 0.8 0.1 0.1"
        )
    for name in ("train", "dev", "test"):
        same_file(Path(out_dir) / f"{name}.spacy", docbin_paths(inputs))
        check_output(Path(out_dir) / f"{name}.spacy")
    vocab = spacy.blank("en").vocab
    docs = list(read_docs(inputs, vocab))
    if len(docs) < 3:
        raise InputError(None, None, f"only {len(docs)} documents: a split needs at least 3")
    order = list(range(len(docs)))
    random.Random(seed).shuffle(order)
    n_train = round(ratios[0] * len(docs))
    n_dev = round(ratios[1] * len(docs))
    parts = {"train": order[:n_train], "dev": order[n_train : n_train + n_dev], "test": order[n_train + n_dev :]}
    sizes = {}
    for name, idx in parts.items():
        db = DocBin(attrs=DOCBIN_ATTRS, store_user_data=True)
        for i in sorted(idx):
            db.add(docs[i])
        with atomic_path(Path(out_dir) / f"{name}.spacy") as tmp:
            db.to_disk(tmp)
        sizes[name] = len(idx)
    return sizes
