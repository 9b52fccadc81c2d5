"""The project tokenizer, case by case: punctuation leaves terms, technology names and flags stay whole."""

import pytest
import spacy

from tech_ner.pipeline.tokenizer import tech_blank


@pytest.fixture(scope="module")
def nlp():
    return tech_blank()


@pytest.mark.parametrize(
    "text, tokens",
    [
        # a sentence-final period, comma, colon or bracket never stays on a term
        ("It ships with USB-C.", ["It", "ships", "with", "USB", "-", "C", "."]),
        ("Phones use 5G.", ["Phones", "use", "5", "G", "."]),
        ("The router has Wi-Fi 6E.", ["The", "router", "has", "Wi", "-", "Fi", "6E", "."]),
        ("The iPhone 15; USB-C.", ["The", "iPhone", "15", ";", "USB", "-", "C", "."]),
        ("It has USB-C: fast.", ["It", "has", "USB", "-", "C", ":", "fast", "."]),
        ("Both (USB-C), please.", ["Both", "(", "USB", "-", "C", ")", ",", "please", "."]),
        ("It is an SoC.", ["It", "is", "an", "SoC", "."]),
        ("We love AWS.", ["We", "love", "AWS", "."]),
        ("Written in C.", ["Written", "in", "C", "."]),
        ("Written in R.", ["Written", "in", "R", "."]),
        # names with inner punctuation stay whole, also before punctuation
        ("We use .NET, Node.js, C# and C++.", ["We", "use", ".NET", ",", "Node.js", ",", "C#", "and", "C++", "."]),
        ("Try Node.js.", ["Try", "Node.js", "."]),
        ("It targets x86-64.", ["It", "targets", "x86-64", "."]),
        # a number and its unit: one rule, written together or apart
        ("TSMC's 3nm and 5 nm nodes.", ["TSMC", "'s", "3", "nm", "and", "5", "nm", "nodes", "."]),
        # version strings stay whole; a detached unit word does not become a version
        ("Upgrade to Python 3.12.", ["Upgrade", "to", "Python", "3.12", "."]),
        ("Use v1.2.3-rc1, okay?", ["Use", "v1.2.3-rc1", ",", "okay", "?"]),
        ("Tested on iOS 17.4.1-beta.", ["Tested", "on", "iOS", "17.4.1-beta", "."]),
        ("A 1.5-tesla magnet.", ["A", "1.5", "-", "tesla", "magnet", "."]),
        # command-line flags stay one token
        ("Run it with --legacy-xml now.", ["Run", "it", "with", "--legacy-xml", "now", "."]),
        ("java -Xmx4g -jar app.jar --port=8080", ["java", "-Xmx4g", "-jar", "app.jar", "--port=8080"]),
        # abbreviations and initials keep their periods
        ("U.S. firms grew.", ["U.S.", "firms", "grew", "."]),
        ("John F. Kennedy spoke.", ["John", "F.", "Kennedy", "spoke", "."]),
        ("The A.I. boom.", ["The", "A.I.", "boom", "."]),
        ("Apple Inc. said so.", ["Apple", "Inc.", "said", "so", "."]),
    ],
)
def test_tokens(nlp, text, tokens):
    assert [t.text for t in nlp(text)] == tokens


def test_rules_survive_saving_and_loading(nlp, tmp_path):
    nlp.to_disk(tmp_path / "p")
    loaded = spacy.load(tmp_path / "p")
    text = "It ships with USB-C. Run --legacy-xml on v1.2-rc1."
    assert [t.text for t in loaded(text)] == [t.text for t in nlp(text)]
