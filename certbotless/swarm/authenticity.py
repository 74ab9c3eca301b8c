"""Which of the store's secrets and configs certbotless made.

Anyone who may deploy a stack may create a config or secret with certbotless's labels; labels
alone would make a tenant's self-signed certificate a version in use. So each object certbotless
makes carries a MAC label over its identity (role, name, Swarm's ID, the certificate name and
key secret its labels name, and a config's data), keyed with a random key only the sidecar holds:
a Swarm secret it makes on first start and mounts into its own service. The ID makes a MAC copied
onto any other object worthless; the data's hash, a config's content swapped in place.

Objects without a valid MAC are ignored everywhere the store is read (versions in use, what the
edge mounts, gc, `list`) and reported once each. Objects made before releases signed them are
adopted when the edge's nginx mounts them right now (certbotless rolled them there), and no
others.

Each object's labels, its MAC's form included, carry their schema (`swarm.schema`, the label
`certbotless.schema`): one a newer certbotless made is ignored the same way, before its MAC is
looked at (its form may be another), and never signed, changed or removed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import secrets as random_tokens
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

from certbotless.model import LabelProblem, ObjectKind, ObjectRole
from certbotless.swarm.api import APIError, Json, Swarm, created_order
from certbotless.swarm.schema import (
    OBJECT_SCHEMA,
    NewerSchema,
    RecordKind,
    readable_schema,
    stamped,
)

MAC = "certbotless.mac"
KIND = "certbotless.kind"  # the object's role (store.KIND; here to avoid a cycle)
CERT_NAME = "certbotless.cert.name"
CERT_KEY_SECRET = "certbotless.cert.key_secret"
STORE_KEY_PREFIX = "cbl-store-key-"
STORE_KEY_BYTES = 32
# What the MAC protects: the certificate store's roles (the account key, the status records and
# the pass lease are found by their own rules).
AUTHENTICATED_ROLES = frozenset({"chain", "key", "nginx-conf", "ticket-key", "placeholder",
                                 "digest-key"})  # fmt: skip
NOT_MADE_HERE = "not made by certbotless: ignored; remove it"
_RENAMED = "-r"  # a suffix mark no name certbotless chooses ends with (then 6 hex digits)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoreKey:
    """The sidecar's MAC key (never logged)."""

    secret: bytes = field(repr=False)

    def mac(self, kind: ObjectKind, item: Json) -> str:
        message = json.dumps(identity(kind, item), separators=(",", ":")).encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def verifies(self, kind: ObjectKind, item: Json) -> bool:
        given = str(labels_of(item).get(MAC, ""))
        return bool(given) and hmac.compare_digest(given, self.mac(kind, item))

    def mac_text(self, purpose: str, text: str) -> str:
        """A MAC over a note certbotless keeps in labels (the claims ledger)."""
        message = json.dumps([purpose, text], separators=(",", ":")).encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def verifies_text(self, purpose: str, text: str, given: str) -> bool:
        return bool(given) and hmac.compare_digest(given, self.mac_text(purpose, text))


def read_store_key(path: Path) -> StoreKey | None:
    """The key mounted at `path`, or None where it is not mounted (a one-off command outside
    the sidecar, before the sidecar's first start)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return StoreKey(data) if len(data) >= STORE_KEY_BYTES else None


def identity(kind: ObjectKind, item: Json) -> list[str]:
    """What a MAC covers, from the object as Docker lists it. A secret's data never comes back
    from the engine, so for a secret only its ID and labels bind it."""
    spec = item["Spec"]
    labels = labels_of(item)
    data = hashlib.sha256(base64.b64decode(spec.get("Data") or "")).hexdigest()
    return [
        kind.value,
        str(labels.get(KIND, "")),
        str(spec["Name"]),
        str(item["ID"]),
        str(labels.get(CERT_NAME, "")),
        str(labels.get(CERT_KEY_SECRET, "")),
        data if kind == ObjectKind.CONFIG else "",
    ]


def base_name(name: str) -> str:
    """The name certbotless meant, before `create_named` had to rename it."""
    return re.sub(_RENAMED + r"[0-9a-f]{6}$", "", name)


def labels_of(item: Json) -> dict[str, str]:
    return dict(item["Spec"].get("Labels") or {})


def newer_object(kind: ObjectKind, item: Json) -> NewerSchema | None:
    """Whether a newer certbotless made the object (its labels are of a newer schema)."""
    labels = labels_of(item)
    what = f"{kind.value} {item['Spec']['Name']} ({labels.get(KIND, 'no role')})"
    try:
        readable_schema(RecordKind.OBJECT, what, labels.get(OBJECT_SCHEMA))
    except NewerSchema as newer:
        return newer
    return None


def untrusted_problem(kind: ObjectKind, item: Json) -> LabelProblem:
    """How an object that carries certbotless's labels without its MAC is reported."""
    role = str(labels_of(item).get(KIND, ""))
    name, object_id = str(item["Spec"]["Name"]), str(item["ID"])
    return LabelProblem(
        f"{kind.value} {name}",
        KIND,
        role,
        f"{kind.value} {name} (ID {object_id}) is {NOT_MADE_HERE} (docker {kind.value} rm "
        f"{object_id})",
    )


class AuthenticObjects:
    """The store's listings of configs and secrets, keeping only those certbotless made. With
    no key (a one-off command where the sidecar's key is not mounted) nothing can be told
    apart: everything is kept and nothing is signed, which `unauthenticated` says."""

    def __init__(self, swarm: Swarm, key: StoreKey | None) -> None:
        self.swarm = swarm
        self.key = key
        # Untrusted objects seen by the latest listings, by ID; each is logged once.
        self.untrusted: dict[str, tuple[ObjectKind, Json]] = {}
        # Objects a newer certbotless made, seen by the latest listings, by ID (logged once).
        self.newer: dict[str, tuple[ObjectKind, Json, NewerSchema]] = {}
        self._logged: set[str] = set()

    @property
    def unauthenticated(self) -> bool:
        return self.key is None

    def configs(self, label: str) -> list[Json]:
        return self._authentic(ObjectKind.CONFIG, self.swarm.configs(label))

    def secrets(self, label: str) -> list[Json]:
        return self._authentic(ObjectKind.SECRET, self.swarm.secrets(label))

    def listing(self, kind: ObjectKind) -> Callable[[str], list[Json]]:
        return self.secrets if kind == ObjectKind.SECRET else self.configs

    def create(self, kind: ObjectKind, name: str, data: bytes, labels: dict[str, str]) -> str:
        """Create an object and add its MAC; one that could not be signed is removed again
        (unsigned, it would be reported as not certbotless's)."""
        make = self.swarm.create_secret if kind == ObjectKind.SECRET else self.swarm.create_config
        object_id = make(name, data, stamped(labels))
        try:
            self.sign(kind, object_id)
        except APIError:
            remove = (
                self.swarm.remove_secret if kind == ObjectKind.SECRET else self.swarm.remove_config
            )
            remove(name)
            raise
        return object_id

    def create_named(
        self, kind: ObjectKind, name: str, data: bytes, labels: dict[str, str]
    ) -> tuple[str, str]:
        """(name, id) of a new object named `name`, or, where an object certbotless did not
        make holds that name, `name` with a random suffix (`base_name` drops it): a planted
        object blocks nothing. A name one of certbotless's holds (a concurrent pass) raises."""
        try:
            return name, self.create(kind, name, data, labels)
        except APIError as error:
            if error.status_code != 409 or self.holder(kind, labels[KIND], name) is not None:
                raise
        other = f"{name}{_RENAMED}{random_tokens.token_hex(3)}"
        log.warning("%s %s is taken by an object certbotless did not make: made %s instead",
                    kind.value, name, other)  # fmt: skip
        return other, self.create(kind, other, data, labels)

    def holder(self, kind: ObjectKind, role: str, name: str) -> tuple[str, str] | None:
        """(name, id) of certbotless's object of that role named `name` (or renamed from it)."""
        for item in self.listing(kind)(f"{KIND}={role}"):
            if base_name(str(item["Spec"]["Name"])) == name:
                return str(item["Spec"]["Name"]), str(item["ID"])
        return None

    def sign(self, kind: ObjectKind, object_id: str) -> None:
        """Add the MAC label to an object certbotless just made (Swarm lets labels change)."""
        if self.key is None:
            return
        item = self.swarm.inspect_object(kind, object_id)
        labels = {**stamped(labels_of(item)), MAC: self.key.mac(kind, item)}
        self.swarm.update_object_labels(kind, item, labels)

    def account_keys(self, items: list[Json]) -> list[Json]:
        """The ACME account key secrets among `items` that certbotless made: signed, or made
        before the store key was (by a release before objects were signed: signed now). Any
        other, such as a newer "version" a tenant's stack file made, is noted as untrusted: its
        key would make the account the tenant's."""
        if self.key is None:
            return items
        keys = self.swarm.secrets(f"{KIND}={ObjectRole.STORE_KEY}")
        first_key = min((created_order(str(k.get("CreatedAt", ""))) for k in keys), default=None)
        kept = []
        for item in items:
            object_id = str(item["ID"])
            legacy = (MAC not in labels_of(item) and first_key is not None
                      and created_order(str(item.get("CreatedAt", ""))) < first_key)  # fmt: skip
            if legacy:
                self.sign(ObjectKind.SECRET, object_id)
            if legacy or self.key.verifies(ObjectKind.SECRET, item):
                self.untrusted.pop(object_id, None)
                kept.append(item)
                continue
            self.untrusted[object_id] = (ObjectKind.SECRET, item)
            if object_id not in self._logged:
                self._logged.add(object_id)
                log.warning("%s", untrusted_problem(ObjectKind.SECRET, item).message)
        return kept

    def adopt(self, mounted: Collection[str]) -> list[str]:
        """Sign the objects without any MAC that the edge mounts right now: made by a release
        before objects were signed, and rolled there by certbotless. Returns their names."""
        adopted = []
        for object_id, (kind, item) in sorted(self.untrusted.items()):
            if object_id in mounted and MAC not in labels_of(item):
                self.sign(kind, object_id)
                adopted.append(str(item["Spec"]["Name"]))
                del self.untrusted[object_id]
                self._logged.discard(object_id)
        if adopted:
            log.warning("adopted %d objects made before certbotless signed its objects, as the "
                        "edge mounts them now: %s", len(adopted), ", ".join(adopted))  # fmt: skip
        return adopted

    def problems(self) -> list[LabelProblem]:
        """One problem per untrusted object, and per object of a newer schema, seen by the
        latest listings."""
        # Copies: the status page's thread may list while a pass does.
        newer = [
            LabelProblem(f"{kind.value} {item['Spec']['Name']}", OBJECT_SCHEMA,
                         str(labels_of(item).get(OBJECT_SCHEMA, "")), str(why))
            for kind, item, why in list(self.newer.values())
        ]  # fmt: skip
        return newer + [
            untrusted_problem(kind, item) for kind, item in list(self.untrusted.values())
        ]

    def readable(self, kind: ObjectKind, items: list[Json]) -> list[Json]:
        """`items` but those a newer certbotless made, which are noted (and logged once)."""
        kept = []
        for item in items:
            object_id = str(item["ID"])
            newer = newer_object(kind, item)
            if newer is None:
                self.newer.pop(object_id, None)
                kept.append(item)
                continue
            if f"newer {object_id}" not in self._logged:
                self._logged.add(f"newer {object_id}")
                log.warning("%s", newer)
            self.newer[object_id] = (kind, item, newer)
        return kept

    def survey(self) -> list[LabelProblem]:
        """List every object carrying a store role (however it is labelled otherwise), noting
        the untrusted ones (those gone since are forgotten), and return their problems."""
        self.untrusted = {}
        self.newer = {}
        for kind in (ObjectKind.CONFIG, ObjectKind.SECRET):
            self.listing(kind)(KIND)
        return self.problems()

    def _authentic(self, kind: ObjectKind, items: list[Json]) -> list[Json]:
        items = self.readable(kind, items)
        if self.key is None:
            if "" not in self._logged:
                self._logged.add("")
                log.warning("the store key is not mounted here: the objects with certbotless's "
                            "labels are not authenticated (run this in the sidecar)")  # fmt: skip
            return items
        kept = []
        for item in items:
            object_id = str(item["ID"])
            role = str(labels_of(item).get(KIND, ""))
            if role not in AUTHENTICATED_ROLES or self.key.verifies(kind, item):
                self.untrusted.pop(object_id, None)
                kept.append(item)
                continue
            self.untrusted[object_id] = (kind, item)
            if object_id not in self._logged:
                self._logged.add(object_id)
                log.warning("%s", untrusted_problem(kind, item).message)
        return kept
