"""Stack files that survive upgrades (issue 26, item 2): Swarm configs and secrets never change,
so `docker stack deploy` of a stack file whose config file changed fails ("only updates to
Labels are allowed") unless the object's name changed too. Every config and secret a stack
file under stacks/ makes from a file of the repository is named by that file's content."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path
from typing import Any

import yaml

from certbotless.model import ObjectRole
from certbotless.swarm.store import STACK_FILE_NAME
from tests.support.paths import REPO

STACKS = REPO / "stacks"
# Their file comes from a variable: the rig writes it for one run, and removes the stack (rig
# remove_leftovers) before another run writes it again. No release ships them.
RIG_ONLY = {
    ("test-pebble.yml", "configs", "acme_ca"),
    ("test-dns01.yml", "secrets", "certbotless-dns-rfc2136-server"),
    ("test-dns01.yml", "secrets", "certbotless-dns-rfc2136-key-name"),
    ("test-dns01.yml", "secrets", "certbotless-dns-rfc2136-key-secret"),
}
# The edge's own stack files: what they make carries certbotless's reserved names, which gc
# removes once no service mounts them.
RELEASE_STACKS = ("edge.yml", "edge-direct.yml")


def content_hash(path: Path) -> str:
    """What a stack file's object name ends with: the first 8 hex digits of the SHA-256."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:8]


def made_objects(stacks: Path = STACKS) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(stack file, "configs" or "secrets", key, definition) of every object the stack files
    create (not the external ones)."""
    made = []
    for stack in sorted(stacks.glob("*.yml")):
        document = yaml.safe_load(stack.read_text()) or {}
        for section in ("configs", "secrets"):
            for key, definition in (document.get(section) or {}).items():
                if not (definition or {}).get("external"):
                    made.append((stack.name, section, key, definition or {}))
    return made


def stale_names(stacks: Path = STACKS) -> list[str]:
    """Each object whose name does not carry its file's current content hash."""
    stale = []
    for stack, section, key, definition in made_objects(stacks):
        if (stack, section, key) in RIG_ONLY:
            continue
        file = (stacks / definition.get("file", "")).resolve()
        wanted = content_hash(file) if file.is_file() else "(no file)"
        name = str(definition.get("name", ""))
        if not name.endswith("_" + wanted):
            stale.append(f"{stack}: {section}.{key}: name {name!r} must end with _{wanted}")
    return stale


def test_every_object_a_stack_file_makes_is_named_by_its_content() -> None:
    """When this fails, a file changed: put the hash it names into the stack file's `name:`
    (and into every label that names the object), and say so in CHANGELOG.md."""
    assert made_objects()  # the stacks were read
    assert stale_names() == []


def test_a_changed_file_with_an_unchanged_name_is_caught(tmp_path: Path) -> None:
    """A later release's change to haproxy.cfg, its stack file left as it is."""
    for directory in ("stacks", "haproxy", "nginx"):
        shutil.copytree(REPO / directory, tmp_path / directory)
    changed = tmp_path / "haproxy" / "haproxy.cfg"
    changed.write_text(changed.read_text() + "# a later release's change\n")
    assert stale_names(tmp_path / "stacks") == [
        "edge.yml: configs.front_haproxy_cfg: name 'certbotless_front_haproxy_cfg_"
        f"{content_hash(REPO / 'haproxy' / 'haproxy.cfg')}' must end with _{content_hash(changed)}"
    ]


def test_the_release_objects_are_under_the_names_gc_may_remove() -> None:
    """The edge's own objects carry the reserved name and label (gc removes old ones); no other
    stack's object takes the reserved form, so gc never touches an application's."""
    for stack, section, key, definition in made_objects():
        name = str(definition.get("name", ""))
        labels = definition.get("labels") or {}
        reserved = bool(STACK_FILE_NAME.fullmatch(name))
        if stack in RELEASE_STACKS:
            assert reserved, f"{stack}: {section}.{key}: {name!r}"
            assert labels.get("certbotless.kind") == ObjectRole.STACK_FILE, (stack, key)
        else:
            assert not reserved and "certbotless.kind" not in labels, (stack, key)


def test_the_rig_only_objects_still_exist() -> None:
    """The exemptions name objects that are still there (no stale exemption hides a new one)."""
    made = {(stack, section, key) for stack, section, key, _ in made_objects()}
    assert made >= RIG_ONLY
    for stack, section, key in RIG_ONLY:
        document = yaml.safe_load((STACKS / stack).read_text())
        assert re.search(r"\$\{", document[section][key]["file"]), (stack, key)
