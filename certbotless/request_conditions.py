"""What a route asks of a request besides its host and path: Traefik's ClientIP, HeaderRegexp,
Query, QueryRegexp, HostRegexp and PathRegexp matchers, and negated Host, Path, Method and Header
ones. Plain data (a foundation
that model imports): labels/traefik/rules.py makes them, edge/conditions.py has nginx check
them, and a request that fails one gets 404, as from Traefik when no router matches."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Check(StrEnum):
    """A matcher, named as Traefik v3 writes it."""

    METHOD = "Method"  # values: the methods (any of them)
    HEADER = "Header"  # values: the name (lower case), the exact value
    HEADER_REGEXP = "HeaderRegexp"  # values: the name (lower case), the RE2 pattern
    QUERY = "Query"  # values: the key, the exact value ("" for a key sent without one)
    QUERY_REGEXP = "QueryRegexp"  # values: the key, the RE2 pattern
    CLIENT_IP = "ClientIP"  # values: the networks (any of them), as CIDR
    HOST = "Host"  # values: the name (lower case, no trailing dot)
    HOST_REGEXP = "HostRegexp"  # values: the pattern as written; pcre over the lower-case host
    PATH = "Path"  # values: the path, matched whole
    PATH_PREFIX = "PathPrefix"  # values: the path the request's starts with
    PATH_REGEXP = "PathRegexp"  # values: the pattern as written; pcre over the routing path


@dataclass(frozen=True, order=True)
class RequestCondition:
    """One matcher on a request; `negated`: the request must not match it. `pcre`, for the
    regexp checks: the pattern as nginx's PCRE reads it, checked and translated by labels."""

    check: Check
    values: tuple[str, ...]
    negated: bool = False
    pcre: str = ""

    def rule(self) -> str:
        """The condition as Traefik v3 writes it."""
        if self.check in (Check.METHOD, Check.CLIENT_IP):
            text = " || ".join(f"{self.check}(`{value}`)" for value in self.values)
            text = f"({text})" if len(self.values) > 1 else text
        else:
            text = f"{self.check}({', '.join(f'`{value}`' for value in self.values)})"
        return f"!{text}" if self.negated else text

    def words(self) -> str:
        """The condition in words, for problems and the status page."""
        name = {Check.METHOD: "method", Check.CLIENT_IP: "client address"}.get(self.check)
        shown = f"{name} {' or '.join(self.values)}" if name else self.rule().lstrip("!")
        return f"not {shown}" if self.negated else shown
