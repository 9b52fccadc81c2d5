"""The real StackOverflow NER files convert with the counts in their SOURCE.md."""

import pytest

from tech_ner.corpus.convert import convert
from tech_ner.corpus.labels import STACKOVERFLOW_TECH, LabelMap
from tech_ner.corpus.readers import detect_format
from tech_ner.corpus.sentences import ReadOptions

from .conftest import SHARED_DATA

SO = SHARED_DATA / "stackoverflow_ner"
pytestmark = pytest.mark.skipif(not SO.is_dir(), reason=f"{SO} is absent (the shared StackOverflow NER copy)")

# SOURCE.md: content sentences (header and code blocks excluded) and tokens (rounded to thousands there).
EXPECTED = {"train": (9265, 137_000), "dev": (2936, 43_000), "test": (3109, 46_000)}


@pytest.mark.parametrize("split", ["train", "dev", "test"])
def test_stackoverflow_counts_match_source_md(tmp_path, split):
    path = SO / f"{split}.txt"
    assert detect_format(path) == "stackoverflow"
    lmap = LabelMap([(label, "TECH") for label in STACKOVERFLOW_TECH], drop_unmapped=True)
    stats = convert([path], tmp_path / f"{split}.spacy", read_options=ReadOptions(drop_so_meta=True), label_map=lmap)
    sentences, tokens = EXPECTED[split]
    assert stats.sentences_out == sentences
    assert abs(stats.tokens_out - tokens) < 1000
    assert stats.read.dropped_meta_sentences > 0
    assert set(stats.entities_out) == {"TECH"}
    assert stats.entities_out["TECH"] == sum(stats.entities_in[label] for label in STACKOVERFLOW_TECH)
    # "A handful of I- tags have no B- before them": repaired and counted, nothing else.
    assert 0 < stats.problems.counts["i_start"] < 50
    assert set(stats.problems.counts) == {"i_start"}
    stats.check_balance()
