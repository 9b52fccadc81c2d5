"""The term_rules component: what GUIDELINES.md says is never a term leaves the recogniser's entities."""

import pytest
import spacy
from spacy.tokens import Doc, Span

from tech_ner.pipeline.term_rules import RULES


@pytest.fixture(scope="module")
def nlp():
    nlp = spacy.blank("en")
    nlp.add_pipe("term_rules")
    return nlp


def tagged(nlp, words, spans, label="TECH"):
    doc = Doc(nlp.vocab, words=words)
    doc.ents = [Span(doc, s, e, label=label) for s, e in spans]
    return [(e.text, e.label_) for e in nlp.get_pipe("term_rules")(doc).ents]


@pytest.mark.parametrize(
    "words, spans, kept",
    [
        # identifiers: numbers, versions and hashes alone are never a term (GUIDELINES 2, 4.1)
        (["expose", "it", "on", "port", "9102"], [(4, 5)], []),
        (["bump", "lodash", "to", "4.17.21"], [(1, 2), (3, 4)], ["lodash"]),
        (["upgrade", "to", "v2", "or", "3.12", "or", "1.0.0rc1"], [(2, 3), (4, 5), (6, 7)], []),
        (["Reverts", "commit", "a3f9c21"], [(2, 3)], []),
        (["since", "0f3e9a1b2c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f"], [(1, 2)], []),
        # ... but a name with a number, a hex-looking name without a digit, and 5G stay
        (
            ["Python", "3.12", "and", "5G", "and", "iOS", "17"],
            [(0, 2), (3, 4), (5, 7)],
            ["Python 3.12", "5G", "iOS 17"],
        ),
        (["the", "deadbeef", "build"], [(1, 2)], ["deadbeef"]),
        # paths: a file name or path is O (4.10); Node.js and file formats are terms
        (["move", "it", "out", "of", "http_client.py"], [(4, 5)], []),
        (["the", "probe", "hits", "/healthz"], [(3, 4)], []),
        (["in", "utils/dates.py", "and", "package.json"], [(1, 2), (3, 4)], []),
        (["Node.js", "reads", "JSON", "and", "Vue.js"], [(0, 1), (2, 3), (4, 5)], ["Node.js", "JSON", "Vue.js"]),
        # edges: a flag or a dangling hyphen never ends a term
        (["python3", "-m", "venv"], [(0, 2)], ["python3"]),
        (["git", "rebase", "--interactive"], [(0, 3)], ["git rebase"]),
        (["Gate", "-", "all", "-"], [(0, 4)], ["Gate - all"]),
        (["C++", "and", "C#", "and", "Wi-Fi", "6E"], [(0, 1), (2, 3), (4, 6)], ["C++", "C#", "Wi-Fi 6E"]),
    ],
)
def test_rules(nlp, words, spans, kept):
    assert [text for text, _ in tagged(nlp, words, spans)] == kept


def test_other_labels_are_left_alone(nlp):
    assert tagged(nlp, ["edit", "http_client.py", "on", "port", "9102"], [(1, 2), (4, 5)], label="File_Name") == [
        ("http_client.py", "File_Name"),
        ("9102", "File_Name"),
    ]


def test_rules_can_be_switched_off_and_are_checked():
    nlp = spacy.blank("en")
    rules = nlp.add_pipe("term_rules", config={"rules": ["paths"]})
    doc = Doc(nlp.vocab, words=["port", "9102", "in", "app.py"])
    doc.ents = [Span(doc, 1, 2, label="TECH"), Span(doc, 3, 4, label="TECH")]
    assert [e.text for e in rules(doc).ents] == ["9102"]
    with pytest.raises(ValueError, match="unknown rules"):
        spacy.blank("en").add_pipe("term_rules", config={"rules": ["numbers"]})
    assert set(RULES) == {"identifiers", "paths", "edges"}


def test_the_trained_pipeline_runs_the_rules(tiny_pipeline):
    nlp = spacy.load(tiny_pipeline)
    assert nlp.pipe_names.index("term_rules") == nlp.pipe_names.index("ner") + 1
    doc = nlp("Reverts commit a3f9c21 on port 9102 in http_client.py .")
    assert not [e for e in doc.ents if e.text in ("a3f9c21", "9102", "http_client.py")]
