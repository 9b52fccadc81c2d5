"""DocBin corpora on disk: the attributes a corpus stores, finding `.spacy` files, reading Docs back, and a Doc's
IOB2 tags. Scoring reads corpora through this module alone, without the converter."""

from pathlib import Path
from typing import Iterator, List, Sequence, Tuple

import spacy
from spacy.tokens import Doc, DocBin

from ..files.problems import InputError

DOCBIN_ATTRS = ["ENT_IOB", "ENT_TYPE", "SENT_START"]
# what the workflow's convert step read, repaired and wrote, beside the .spacy files (tech_ner/corpus/prepare.py)
INFO_FILE = "corpus.json"


def expand_inputs(inputs: Sequence[Path], suffix: str = "") -> List[Path]:
    """Files as given; folders become their files ending in `suffix` (recursively, sorted, hidden ones left out)."""
    files: List[Path] = []
    for p in map(Path, inputs):
        if p.is_dir():
            found = sorted(
                f
                for f in p.rglob(f"*{suffix}")
                if f.is_file() and not any(part.startswith(".") for part in f.relative_to(p).parts)
            )
            if not found:
                raise InputError(p, None, f"folder holds no {suffix + ' ' if suffix else ''}files")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            raise InputError(p, None, "no such file or folder")
    return files


def docbin_paths(inputs: Sequence[Path]) -> List[Path]:
    """`.spacy` files as given, and those inside folders (sorted)."""
    return expand_inputs(inputs, suffix=".spacy")


def read_docs(inputs: Sequence[Path], vocab=None) -> Iterator[Doc]:
    vocab = vocab if vocab is not None else spacy.blank("en").vocab
    for path in docbin_paths(inputs):
        try:
            db = DocBin().from_disk(path)
        except Exception as e:  # a truncated or foreign file: say which
            raise InputError(path, None, f"not a readable DocBin (.spacy) file: {e}") from None
        yield from db.get_docs(vocab)


def doc_to_iob2(doc: Doc) -> List[List[Tuple[str, str]]]:
    """Sentences of (token, IOB2 tag); a doc without sentence boundaries is one sentence."""
    tags = [f"{t.ent_iob_}-{t.ent_type_}" if t.ent_iob_ in ("B", "I") else "O" for t in doc]
    if doc.has_annotation("SENT_START"):
        return [[(t.text, tags[t.i]) for t in sent] for sent in doc.sents]
    return [[(t.text, tags[t.i]) for t in doc]]
