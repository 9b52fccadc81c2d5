"""Register a pipeline factory once, even when two copies of its file are imported.

The package step ships the runtime subpackage (this file included) inside the pipeline
package, so one process may import two copies of a component file: the package's and
`tech_ner`'s (imported by the `spacy_factories` entry points whenever a Language is
created, or by the developer). spaCy refuses to register one factory name from two
files (E004), so a copy of the same factory version keeps the registration that came
first; the two are interchangeable.

This file imports nothing from its package; the runtime files import it relatively.
"""

import os
import sys
from typing import Any, Callable

from catalogue import RegistryError
from spacy.language import Language
from spacy.util import registry


def registered_by_another_copy(name: str, version: str, func: Callable) -> bool:
    """Whether factory `name` is already registered, at `version`, from a different file than `func`'s."""
    try:
        existing = registry.factories.get(name)
    except RegistryError:
        return False
    other_file = getattr(existing, "__code__", None) is not None and (
        existing.__code__.co_filename != func.__code__.co_filename  # not a reload of this file
    )
    return other_file and getattr(existing, "tech_ner_factory", None) == version and _has_factory_meta(name)


def _has_factory_meta(name: str) -> bool:
    """Whether `Language.factory` registered `name` (an entry point alone registers the function, not its meta)."""
    try:
        Language.get_factory_meta(name)
    except ValueError:
        return False
    return True


def register_factory_once(name: str, version: str, func: Callable, **factory_kwargs: Any) -> None:
    """`Language.factory(name, **factory_kwargs)(func)`, unless another copy of the same version came first.

    name (str): The factory name.
    version (str): The factory's version tag: copies agree on it when they are interchangeable.
    func (Callable): The factory function.
    """
    func.tech_ner_factory = version  # type: ignore[attr-defined]
    if not registered_by_another_copy(name, version, func):
        Language.factory(name, **factory_kwargs)(func)


def _one_torch_thread_in_forked_child() -> None:
    # A child forked after torch ran its first op inherits an OpenMP pool whose threads did not survive the
    # fork, and hangs in its own first op: `nlp.pipe(texts, n_process=2)` forks its workers on Linux. With one
    # thread torch never enters that pool, and n_process workers share the cores between them anyway.
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


if hasattr(os, "register_at_fork"):  # every pipeline component imports this file, so loading a pipeline sets it
    os.register_at_fork(after_in_child=_one_torch_thread_in_forked_child)
