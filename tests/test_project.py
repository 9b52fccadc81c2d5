"""The shape of the package: imports only downwards, and project.yml's deps list the package code each step runs,
so that `spacy project run` re-runs exactly the steps whose code changed."""

import ast
from pathlib import Path

import pytest
import yaml

from .conftest import ROOT

# Lowest first: a subpackage imports only from those before it (and from itself).
LAYERS = ("pipeline", "files", "corpus", "training", "evaluation", "packaging", "apps", "commands")
# The parts of the runtime that shape the corpus steps' outputs (importing one runs tech_ner/pipeline/__init__)
CORPUS_RUNTIME = ("tech_ner/pipeline/tags.py", "tech_ner/pipeline/tokenizer.py")
STEPS = {
    "corpus": (["scripts/build_corpus.py"], True),
    "convert": (["scripts/prepare_corpus.py", "scripts/convert.py"], True),
    "convert-so": (["scripts/convert.py"], True),
    "train": (["scripts/train.py"], False),
    "calibrate": (["scripts/calibrate.py"], False),
    "evaluate": (["scripts/evaluate.py"], False),
    "package": (["scripts/package.py"], False),
    "train-so": (["scripts/train.py"], False),
    "evaluate-so": (["scripts/evaluate.py"], False),
}


def imported_modules(path: Path):
    """The tech_ner modules a file imports (at the top or inside functions), as dotted names."""
    rel = path.relative_to(ROOT).with_suffix("")
    package = list(rel.parts[:-1]) if rel.name != "__init__" else list(rel.parts[:-1])
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            if module.split(".")[0] == "tech_ner":
                yield module
                yield from (f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.split(".")[0] == "tech_ner")


def module_file(name: str):
    path = ROOT.joinpath(*name.split("."))
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.exists():
            return candidate
    return None


def code_run_by(scripts):
    """Every tech_ner file a script imports, directly or through others, with the packages' __init__ files."""
    seen, todo = set(), [ROOT / s for s in scripts]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in imported_modules(path):
            parts = name.split(".")
            todo.extend(f for f in (module_file(".".join(parts[:i])) for i in range(1, len(parts) + 1)) if f)
    return {str(p.relative_to(ROOT)) for p in seen if p.parts[len(ROOT.parts)] == "tech_ner"}


def test_subpackages_import_only_downwards():
    for path in sorted((ROOT / "tech_ner").rglob("*.py")):
        rel = path.relative_to(ROOT / "tech_ner").parts
        if len(rel) == 1:
            continue  # tech_ner/__init__.py and __main__.py stand above everything
        own = LAYERS.index(rel[0])
        for name in set(imported_modules(path)):
            parts = name.split(".")
            if len(parts) > 1 and parts[1] in LAYERS:
                assert LAYERS.index(parts[1]) <= own, f"{path.relative_to(ROOT)} imports {name}: upwards"


@pytest.mark.parametrize("step", sorted(STEPS))
def test_project_steps_list_the_code_they_run(step):
    commands = {c["name"]: c for c in yaml.safe_load((ROOT / "project.yml").read_text(encoding="utf-8"))["commands"]}
    scripts, corpus_step = STEPS[step]
    needed = {f for f in code_run_by(scripts) if (ROOT / f).stat().st_size > 400 or f.startswith("tech_ner/pipeline/")}
    if corpus_step:
        needed = {f for f in needed if not f.startswith("tech_ner/pipeline/") or f in CORPUS_RUNTIME}
    deps = set(commands[step]["deps"])
    assert set(scripts) <= deps
    assert sorted(needed - deps) == [], f"{step}: project.yml deps lack package code the step runs"
