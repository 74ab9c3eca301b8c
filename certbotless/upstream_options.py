"""How a route reaches its service's tasks and passes their answers on, for Traefik's service
options and buffering: which task takes a request (loadBalancer.strategy, a sticky cookie),
whether an answer goes on to the client as it comes (responseForwarding.flushInterval), how
much of it is kept in memory (memResponseBodyBytes) and the serversTransport. Imports nothing
of certbotless (a foundation: `model.Route` holds one `UpstreamOptions`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Strategy(StrEnum):
    """Traefik's loadBalancer.strategy values the edge applies."""

    ROUND_ROBIN = "wrr"  # nginx's default
    POWER_OF_TWO_CHOICES = "p2c"  # nginx's `random two least_conn`


@dataclass(frozen=True)
class StickyCookie:
    """Traefik's sticky cookie: set on an answer to a request that had none, it brings the
    client's later requests to the same task. `same_site` as Set-Cookie writes it (Lax,
    Strict, None; "" for none); `max_age` as Go writes it: > 0 Max-Age=N, < 0 Max-Age=0, 0
    none."""

    name: str
    path: str = "/"
    domain: str = ""
    http_only: bool = False
    secure: bool = False
    same_site: str = ""
    max_age: int = 0

    def attributes(self) -> str:
        """What follows `name=value` in Set-Cookie, in Go's order (net/http Cookie.String)."""
        parts = [f"Path={self.path}"] if self.path else []
        if self.domain:
            parts.append(f"Domain={self.domain}")
        if self.max_age:
            parts.append(f"Max-Age={max(self.max_age, 0)}")
        parts += ["HttpOnly"] * self.http_only + ["Secure"] * self.secure
        if self.same_site:
            parts.append(f"SameSite={self.same_site}")
        return "".join(f"; {part}" for part in parts)


@dataclass(frozen=True)
class ServersTransport:
    """Traefik's serversTransport (a file provider's `http.serversTransports.<name>`): over
    HTTPS, the service's certificate `verify`-ed against `ca_pem` (empty: the image's CAs) for
    `server_name` (empty: the service's name); `connect_timeout` and `response_timeout` in
    nginx's syntax ("" for nginx's defaults)."""

    verify: bool = False
    ca_pem: str = ""
    server_name: str = ""
    connect_timeout: str = ""
    response_timeout: str = ""


DEFAULT_TRANSPORT = ServersTransport()


@dataclass(frozen=True)
class HealthCheck:
    """Traefik's active health check of a service (`loadBalancer.healthCheck`): `path` (a
    reference resolved against the service's URL), with `scheme` and on `port` when given ("",
    0: the service's), asked every `interval_ms` while the service is up, every
    `unhealthy_interval_ms` while it is down, with `method`, `hostname` as Host ("": the
    URL's) and `headers`; healthy when the answer (after up to 10 redirects when
    `follow_redirects`) is `status`, or any 2xx or 3xx when 0, within `timeout_ms`. `label`:
    the label a problem names when the check cannot be applied."""

    path: str = ""
    scheme: str = ""
    port: int = 0
    method: str = "GET"
    hostname: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    status: int = 0
    follow_redirects: bool = True
    interval_ms: int = 30_000
    unhealthy_interval_ms: int = 30_000
    timeout_ms: int = 5_000
    label: str = field(default="", compare=False)


@dataclass(frozen=True)
class UpstreamOptions:
    """`flush_at_once`: the answer goes on to the client as it arrives (proxy_buffering off);
    `answer_memory`: bytes of an answer kept in memory, the rest in a temporary file;
    `transport`: how the tasks are reached (serversTransport); `health_check`: Traefik's active
    health check (None: none)."""

    strategy: Strategy = Strategy.ROUND_ROBIN
    sticky: StickyCookie | None = None
    flush_at_once: bool = False
    answer_memory: int | None = None
    transport: ServersTransport = DEFAULT_TRANSPORT
    health_check: HealthCheck | None = None

    @property
    def balances(self) -> bool:
        """Whether the service's upstream block chooses its tasks other than in turn."""
        return self.strategy != Strategy.ROUND_ROBIN or self.sticky is not None


DEFAULT_UPSTREAM = UpstreamOptions()
