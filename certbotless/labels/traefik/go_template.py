"""Go's regexp replacement templates (Regexp.Expand: `$1`, `${1}`, `$name`, `${name}`, `$$`)
written as the edge's njs function reads them: `$$` a dollar, `${N}` group N. Names are
resolved to numbers here, as Go resolves them: `$1x` is the group named `1x` (none: empty),
a name no group has is empty, a `$` that starts no name is kept. Pure."""

from __future__ import annotations

import re
from collections.abc import Sequence

_NAME_RE = re.compile(r"\$(?:\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+)|(\$))", re.ASCII)


def njs_template(template: str, groups: int, names: Sequence[tuple[str, int]]) -> str:
    """`template` with its references as group numbers (`${N}`), literal dollars as `$$`;
    `groups`: the regex's capturing groups, `names`: its named ones and their numbers."""
    out, at = [], 0
    for found in _NAME_RE.finditer(template):
        out.append(template[at : found.start()].replace("$", "$$"))
        at = found.end()
        if found[3]:
            out.append("$$")
            continue
        number = _group_number(found[1] or found[2], groups, names)
        if number is not None:
            out.append(f"${{{number}}}")
    out.append(template[at:].replace("$", "$$"))
    return "".join(out)


def _group_number(name: str, groups: int, names: Sequence[tuple[str, int]]) -> int | None:
    """The group Go's Expand takes for `name` (None: it writes nothing)."""
    if name.isdigit():
        number = int(name)
        return number if number <= groups else None
    return next((number for named, number in names if named == name), None)
