"""Label rewriting: collapse or rename entity labels, drop the ones not wanted.

Rules come from `--map FROM=TO` options or a mapping file (JSON object, or text
lines `FROM TO` / `FROM=TO`). FROM matches a label exactly, then ignoring case,
then as a glob (`*`, `?`, `[...]`), first rule first. TO is the new label, or
`O` (or empty, or JSON null) to drop entities of that label.
"""

import fnmatch
from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from ..files.problems import InputError, shown
from ..files.textfile import parse_user_json, read_user_text

DROP = None


class LabelMap:
    """Maps input labels to output labels (None drops the entity).

    rules (Sequence[Tuple[str, Optional[str]]]): (pattern, target) pairs.
    drop_unmapped (bool): Drop labels no rule matches, instead of keeping them.
    source (str): Where the rules came from, for messages.
    """

    def __init__(
        self, rules: Sequence[Tuple[str, Optional[str]]] = (), *, drop_unmapped: bool = False, source: str = "label map"
    ):
        self.rules = [(p, _target(t)) for p, t in rules]
        self.drop_unmapped = drop_unmapped
        self.source = source
        self.matched: Counter = Counter()  # pattern -> entities it matched
        self._cache: Dict[str, Tuple[Optional[str], Optional[str]]] = {}

    def __bool__(self) -> bool:
        return bool(self.rules) or self.drop_unmapped

    def map(self, label: str) -> Optional[str]:
        """RETURNS (Optional[str]): the output label, or None to drop the entity."""
        hit = self._cache.get(label)
        if hit is None:
            hit = self._lookup(label)
            self._cache[label] = hit
        pattern, target = hit
        if pattern is not None:
            self.matched[pattern] += 1
        return target

    def _lookup(self, label: str) -> Tuple[Optional[str], Optional[str]]:
        folded = label.casefold()
        for match in (
            lambda p: p == label,
            lambda p: p.casefold() == folded,
            lambda p: fnmatch.fnmatchcase(folded, p.casefold()),
        ):
            for pattern, target in self.rules:
                if match(pattern):
                    return pattern, target
        return None, (DROP if self.drop_unmapped else label)

    def check_used(self, labels_seen: Iterable[str]) -> None:
        """Raise if the map has rules and none of them matched any entity."""
        if self.rules and not self.matched:
            seen = ", ".join(sorted(set(labels_seen))) or "none"
            patterns = ", ".join(p for p, _ in self.rules[:10])
            raise InputError(
                self.source,
                None,
                f"the label map maps nothing: none of its labels ({patterns}) occur in the input, "
                f"whose labels are: {seen}. Check the spelling of the map's labels.",
            )

    def unused_patterns(self) -> List[str]:
        return [p for p, _ in self.rules if not self.matched[p]]


def _target(value: Optional[str]) -> Optional[str]:
    if value is None:
        return DROP
    value = value.strip()
    if value in ("", "O", "o"):
        return DROP
    if value[:2].upper() in ("B-", "I-"):
        value = value[2:]
    return value


def parse_map_option(option: str) -> Tuple[str, Optional[str]]:
    if "=" not in option:
        raise InputError(
            None, None, f"--map {option!r}: expected FROM=TO, for example --map 'Library=TECH' or --map '*=TECH'"
        )
    src, dst = option.split("=", 1)
    if not src.strip():
        raise InputError(None, None, f"--map {option!r}: the label before '=' is empty")
    return src.strip(), dst


def load_label_map_file(path: Path) -> List[Tuple[str, Optional[str]]]:
    """Read mapping rules from a JSON object or a text file of `FROM TO` lines."""
    text = read_user_text(path, "label map")
    stripped = text.lstrip()
    if stripped.startswith("{"):
        data = parse_user_json(text, path, "label map", "one object of label: target pairs")
        if not isinstance(data, dict):
            raise InputError(path, None, "label map JSON must be one object of label: target pairs")
        rules = []
        for k, v in data.items():
            if v is not None and not isinstance(v, str):
                raise InputError(
                    path, None, f"label map entry {shown(k)}: the target must be a string or null, not {shown(v)}"
                )
            rules.append((k, v))
    else:
        rules = []
        for lineno, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split("=", 1) if "=" in line else line.split(None, 1)
            if len(parts) != 2:
                raise InputError(path, lineno, f"expected 'FROM TO' or 'FROM=TO', got {shown(line)}")
            rules.append((parts[0].strip(), parts[1].strip()))
    if not rules:
        raise InputError(path, None, "label map is empty: add rules such as 'Library TECH'")
    return rules


def build_label_map(
    map_options: Sequence[str] = (), map_file: Optional[Path] = None, drop_unmapped: bool = False
) -> LabelMap:
    rules: List[Tuple[str, Optional[str]]] = []
    source = "--map options"
    if map_file is not None:
        rules.extend(load_label_map_file(map_file))
        source = str(map_file)
    rules.extend(parse_map_option(o) for o in map_options)
    return LabelMap(rules, drop_unmapped=drop_unmapped, source=source)


# The StackOverflow NER types that are technology terms, as in the brief's recipe.
STACKOVERFLOW_TECH = ("Application", "Library", "Language", "Operating_System", "Device", "File_Type")
