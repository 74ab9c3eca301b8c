"""The deploy step: roll the edge onto the certificates in use, and what came of it."""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from certbotless.edge.rollout import RolledBack, RolloutError
from certbotless.edge.validation import NginxConfigError
from certbotless.model import CertSpec, LabelProblem, Route, StoredCert
from certbotless.seams import CertificateStore, EdgeDeployer, Progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Deployed:
    """`done` when the edge is as wanted (rolled now, or already so)."""

    done: bool = False
    rolled: bool = False
    error: str | None = None
    refused: dict[str, str] = field(default_factory=dict)  # name → serial Swarm rolled back
    seconds: float = 0.0  # how long the roll took (or failed after)
    problems: tuple[LabelProblem, ...] = ()  # services left out of the configuration

    @property
    def outcome(self) -> str:
        """For the status records: the roll's error, "ok", or "" when nothing rolled."""
        return self.error or ("ok" if self.rolled else "")


def serves_none(deployer: EdgeDeployer, edge: str, current: Mapping[str, StoredCert]) -> bool:
    """Whether `edge` mounts none of the stored certificates in use (a `docker stack deploy` put
    back its stack's spec, or it is new): its roll is then never put off."""
    mounted = deployer.mounted_object_ids(edge) or set()
    return bool(current) and not any(
        {cert.config_id, cert.secret_id} & mounted for cert in current.values()
    )


def labelled_only(
    current: Mapping[str, StoredCert],
    labelled: Iterable[CertSpec],
    asked: Collection[str],
    progress: Progress,
) -> dict[str, StoredCert]:
    """The versions the edge serves: those of the certificates labels want. One stored for a
    name no label asks for (`issue --name`) is neither mounted nor renewed; asked for now
    (`asked`), it is said so."""
    names = {spec.name for spec in labelled}
    for name in sorted(set(current) - names):
        if name in asked:
            progress(f"{name}: stored, but no label wants it: neither mounted nor renewed")
    return {name: cert for name, cert in current.items() if name in names}


def deploy_edge(
    deployer: EdgeDeployer,
    store: CertificateStore,
    edge: str,
    routes: Sequence[Route],
    current: Mapping[str, StoredCert],
    wanted_names: Iterable[str],
    progress: Progress,
) -> Deployed:
    """A version in a roll that Swarm rolled back is marked refused: never current again."""
    started = time.monotonic()
    try:
        result = deployer.deploy(edge, routes, current, wanted_names, progress)
    except RolledBack as refused:
        log.error("%s", refused)
        reason = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC: Swarm rolled back the update"
        names = {}
        for cert in current.values():
            if cert.config_id in refused.rotated:
                store.mark_refused(cert, reason)
                names[cert.name] = cert.serial
        return Deployed(error=str(refused), refused=names, seconds=time.monotonic() - started)
    except (RolloutError, NginxConfigError) as error:
        log.error("%s", error)
        return Deployed(error=str(error), seconds=time.monotonic() - started)
    return Deployed(done=True, rolled=result.changed, seconds=result.seconds,
                    problems=result.left_out)  # fmt: skip
