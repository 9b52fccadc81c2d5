"""The runtime inside the pipeline package: `tech_ner.pipeline` shipped whole as its subpackage.

The package's `__init__.py` and `setup.py` are written here in full (spaCy's templates, plus the subpackage),
so nothing spaCy generated is edited and no list of files is kept by hand: the subpackage is what
`tech_ner.pipeline` is, and tests/test_package.py checks that it imports nothing else from `tech_ner`.
"""

import shutil
from pathlib import Path

# The runtime's name inside the pipeline package: en_tech_ner.pipeline
RUNTIME = "pipeline"

PACKAGE_INIT = '''"""A trained spaCy pipeline; importing it registers its runtime (`.{runtime}`) with spaCy."""
from pathlib import Path

from spacy.util import get_model_meta, load_model_from_init_py

from . import {runtime}  # noqa: F401  (registers the components and config functions)

__version__ = get_model_meta(Path(__file__).parent)["version"]


def load(**overrides):
    return load_model_from_init_py(__file__, **overrides)
'''

# spaCy's setup.py for a pipeline package, with the runtime subpackage among the packages
PACKAGE_SETUP = """#!/usr/bin/env python
import json
from pathlib import Path
from shutil import copy

from setuptools import setup

root = Path(__file__).resolve().parent
meta = json.loads((root / "meta.json").read_text(encoding="utf-8"))
name = meta["lang"] + "_" + meta["name"]
model_dir = root / name / (name + "-" + meta["version"])
copy(root / "meta.json", root / name)
copy(root / "meta.json", model_dir)
data = sorted(str(p.relative_to(root / name)) for p in model_dir.rglob("*") if p.is_file() and not p.name.startswith("."))
readme = root / "README.md"
setup(
    name=name,
    description=meta.get("description"),
    long_description=readme.read_text(encoding="utf-8") if readme.exists() else "",
    author=meta.get("author"),
    author_email=meta.get("email"),
    url=meta.get("url"),
    version=meta["version"],
    license=meta.get("license"),
    packages=[name, name + ".{runtime}"],
    package_data={{name: data + ["meta.json"]}},
    install_requires=meta.get("setup_requires", []) + meta.get("requirements", []),
    zip_safe=False,
    entry_points={{"spacy_models": ["{{m}} = {{m}}".format(m=name)]}},
)
"""


def runtime_dir() -> Path:
    """RETURNS (Path): The folder of the runtime subpackage, `tech_ner/pipeline`."""
    return Path(__file__).resolve().parent.parent / "pipeline"


def ship_runtime(module_dir: Path) -> Path:
    """Copy the runtime subpackage into a package folder and write an `__init__.py` that imports it.

    module_dir (Path): The importable folder of the pipeline package (e.g. en_tech_ner-0.1.0/en_tech_ner).
    RETURNS (Path): The runtime's folder inside it.
    """
    target = Path(module_dir) / RUNTIME
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(runtime_dir(), target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (Path(module_dir) / "__init__.py").write_text(PACKAGE_INIT.format(runtime=RUNTIME), encoding="utf-8")
    return target


def write_package_files(pkg_dir: Path, module: str) -> None:
    """Give the folder `spacy package` wrote the runtime and our own `__init__.py` and `setup.py`."""
    ship_runtime(Path(pkg_dir) / module)
    (Path(pkg_dir) / "setup.py").write_text(PACKAGE_SETUP.format(runtime=RUNTIME), encoding="utf-8")
