"""The workflow's corpus: a folder of BIO files (train/dev/test) or one file -> train/dev/test DocBins.

`spacy project run all --vars.bio_dir DIR` brings a user's own data through the same steps as the embedded
corpus. DIR holds files named for their split (`train.*`, `dev.*` or `valid*.*`, `test.*`, in any shape that
`tech-ner convert` reads), or it is one file, or a folder of files with no split names: then the documents are
split by seed. A missing dev split is cut from train. What was read, repaired and written goes to `corpus.json`
beside the DocBins, for the report and the package meta.
"""

import json
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ..files.atomic import write_text_atomic
from .convert import ConvertStats, convert
from .docbin import INFO_FILE, expand_inputs
from .embedded import SPLITS
from .export import split_corpus
from .labels import LabelMap
from ..files.problems import InputError
from .sentences import ReadOptions

SPLIT_ALIASES = {
    "train": ("train", "training"),
    "dev": ("dev", "valid", "validation", "val"),
    "test": ("test", "testing"),
}


def find_split_files(source: Path) -> Dict[str, List[Path]]:
    """The files of a folder by split, from their names (`train.txt`, `dev.tsv`, `valid.conll`, `test.jsonl`).

    RETURNS (Dict[str, List[Path]]): split -> files; empty when no file is named for a split.
    """
    found: Dict[str, List[Path]] = {}
    if not source.is_dir():
        return found
    for path in expand_inputs([source]):
        stem = path.name.split(".")[0].lower()
        for split, aliases in SPLIT_ALIASES.items():
            if stem in aliases or any(stem.startswith(a + "_") or stem.startswith(a + "-") for a in aliases):
                found.setdefault(split, []).append(path)
    return found


def _counts(stats: ConvertStats) -> Dict:
    return {
        "documents": stats.docs_out,
        "sentences": stats.sentences_out,
        "tokens": stats.tokens_out,
        "entities": dict(sorted(stats.entities_out.items())),
        "repaired_or_skipped": stats.problems.total,
        "problems": dict(sorted(stats.problems.counts.items())),
    }


def prepare_corpus(
    source: Path,
    out_dir: Path,
    *,
    strict: bool,
    n_sents: int = 10,
    seed: int = 0,
    ratios: Tuple[float, float, float] = (0.8, 0.1, 0.1),
    label_map: Optional[LabelMap] = None,
    read_options: Optional[ReadOptions] = None,
    name: Optional[str] = None,
    embedded: bool = False,
) -> Tuple[Dict, List[ConvertStats]]:
    """Convert `source` into out_dir/{train,dev,test}.spacy and write out_dir/corpus.json.

    source (Path): A folder with split-named files, a folder of files to split, or one file to split.
    strict (bool): Stop at the first problem (the embedded corpus) instead of repairing and reporting it.
    n_sents (int): Sentences per document where the input marks none.
    seed (int): The seed of the split, where the data is not split already.
    ratios (Tuple[float, float, float]): train/dev/test shares of a split by seed.
    name (Optional[str]): The corpus's name for the meta (default: the folder or file name).
    embedded (bool): Whether `source` is the project's embedded corpus (the package meta names it so).
    RETURNS (Tuple[Dict, List[ConvertStats]]): what corpus.json holds, and each conversion's stats.
    """
    source, out_dir = Path(source), Path(out_dir)
    if not source.exists():
        raise InputError(source, None, "no such file or folder: give --vars.bio_dir a folder of BIO files or one file")
    options = read_options or ReadOptions()
    files = find_split_files(source)
    info: Dict = {
        "name": name or source.name,
        "path": str(source),
        "embedded": embedded,
        "mode": "strict" if strict else "repair",
        "labels_mapped": bool(label_map),
        "splits": {},
    }
    all_stats: List[ConvertStats] = []

    def one(inputs: Sequence[Path], output: Path) -> ConvertStats:
        stats = convert(inputs, output, read_options=options, label_map=label_map, n_sents=n_sents, strict=strict)
        all_stats.append(stats)
        return stats

    if "train" in files and "test" in files:
        for split in SPLITS:
            if split in files:
                info["splits"][split] = _counts(one(files[split], out_dir / f"{split}.spacy"))
        info["split_rule"] = "as given by the file names"
        if "dev" not in files:
            share = ratios[1] / (ratios[0] + ratios[1])
            with tempfile.TemporaryDirectory() as tmp:
                sizes = split_corpus([out_dir / "train.spacy"], Path(tmp), ratios=(1 - share, share, 0.0), seed=seed)
                for split in ("train", "dev"):
                    (Path(tmp) / f"{split}.spacy").replace(out_dir / f"{split}.spacy")
            info["splits"]["dev"] = {"documents": sizes["dev"]}
            info["splits"]["train"]["documents_before_dev_cut"] = info["splits"]["train"]["documents"]
            info["splits"]["train"]["documents"] = sizes["train"]
            info["split_rule"] = f"train and test as given; dev is {share:.0%} of train's documents (seed {seed})"
    elif files and set(files) != {"train"}:
        missing = [s for s in ("train", "test") if s not in files]
        raise InputError(
            source,
            None,
            f"has {', '.join(sorted(files))} files but no {' or '.join(missing)} file: "
            "name the files train.*, dev.* and test.*, or give one file to split",
        )
    else:
        inputs = [source] if source.is_file() else expand_inputs([source])
        with tempfile.TemporaryDirectory() as tmp:
            whole = Path(tmp) / "all.spacy"
            info["splits"]["all"] = _counts(one(inputs, whole))
            sizes = split_corpus([whole], out_dir, ratios=ratios, seed=seed)
        for split in SPLITS:
            info["splits"][split] = {"documents": sizes[split]}
        info["split_rule"] = f"documents split {'/'.join(f'{r:g}' for r in ratios)} by seed {seed}"
    labels = sorted({label for s in all_stats for label in s.entities_out})
    info["labels"] = labels
    write_text_atomic(out_dir / INFO_FILE, json.dumps(info, indent=2) + "\n")
    return info, all_stats
