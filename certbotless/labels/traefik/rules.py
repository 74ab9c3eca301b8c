"""Traefik's router rule language (v2 and v3) → alternatives: sets of hosts (none: every host),
each with one path prefix or exact path and the request conditions the other matchers ask
(negated Host and Path, HostRegexp and PathRegexp patterns, Method, Header, Query, ClientIP).
Pure; a rule nginx cannot express raises one RuleError that names the part it cannot.

Grammar (Traefik's, with the usual precedence: `!` over `&&` over `||`):

    rule    := or
    or      := and ("||" and)*
    and     := unary ("&&" unary)*
    unary   := "!" unary | "(" or ")" | matcher
    matcher := NAME "(" [STRING ("," STRING)*] ")"      STRING: `…` or "…" (Go escapes)

Each syntax has Traefik's own matchers (pkg/muxer/http/matcher.go, matcher_v2.go), named as
Traefik reads them (as written, lower, UPPER or Title case): v2's Host, Path, PathPrefix and Method
take several values (any of them) and its Headers a name and a value; v3's take one value (Header
and HeaderRegexp two), and a v2 form under v3 is refused as Traefik v3 refuses it. An empty
value is refused in both, as Traefik's CheckRule does. v1's `Host:a,b;PathPrefix:/x` form is read
by `parse_v1_rule`, as v2.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace

from certbotless.labels.traefik.go_regex import NotPortable, header_pcre, to_pcre
from certbotless.labels.traefik.query_regex import query_pcre, query_value_pattern
from certbotless.labels.traefik.templates import TemplateError, has_variables, template_pcre
from certbotless.labels.values import HEADER_NAME_RE, HEADER_VALUE_RE
from certbotless.request_conditions import Check, RequestCondition

MAX_RULE_LENGTH = 4096
MAX_DEPTH = 32  # nesting of parentheses and `!`
MAX_ALTERNATIVES = 64  # conjunctions after expanding every `||`

V2, V3 = "v2", "v3"
SYNTAXES = (V2, V3)
# Traefik's matchers by syntax, each with the number of values it takes (None: one or more).
_MATCHERS: dict[str, dict[str, tuple[int, ...] | None]] = {
    V3: {"ClientIP": (1,), "Method": (1,), "Host": (1,), "HostRegexp": (1,), "Path": (1,),
         "PathRegexp": (1,), "PathPrefix": (1,), "Header": (2,), "HeaderRegexp": (2,),
         "Query": (1, 2), "QueryRegexp": (1, 2)},
    V2: {"Host": None, "HostHeader": None, "HostRegexp": None, "ClientIP": None, "Path": None,
         "PathPrefix": None, "Method": None, "Headers": None, "HeadersRegexp": None,
         "Query": None},
}  # fmt: skip
# Matchers nginx can express, by lowercase name; the others are named in the error.
_HOST = {"host", "hostheader"}
_PATHS = {"path": True, "pathprefix": False}  # → exact
_HOST_REGEXP = "hostregexp"
_PATH_REGEXP = "pathregexp"
_METHOD = "method"
_HEADER = {"headers", "header"}  # v2's Headers(`K`, `V`), v3's Header(`K`, `V`): exact value
_HEADER_REGEXP = {"headersregexp", "headerregexp"}
_QUERY = {"query", "queryregexp"}
_CLIENT_IP = "clientip"
_METHOD_RE = re.compile(r"^[A-Z]{1,20}$", re.ASCII)
# A regexp that is one literal name: `^a\.example\.com$` (v3) or `a.example.com` (v2).
_LITERAL_HOST_RE = re.compile(r"^\^?((?:[A-Za-z0-9-]|\\\.)+)\$?$", re.ASCII)


class RuleError(ValueError):
    """The rule is malformed, or asks for something nginx cannot do here; the message says which."""


@dataclass(frozen=True)
class Matcher:
    name: str  # as written
    args: tuple[str, ...]
    template: bool = False  # v1/v2 Path, PathPrefix, HostRegexp with gorilla/mux {variables}


@dataclass(frozen=True)
class Not:
    item: Node


@dataclass(frozen=True)
class All:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Any:
    items: tuple[Node, ...]


Node = Matcher | Not | All | Any


@dataclass(frozen=True)
class Alternative:
    """Requests for one of `hosts` (any host, when empty) whose path starts with `path` (or is
    `path`, when `exact`), with one of `methods` (any when empty), every header of `headers` at
    its value, and every other condition met."""

    hosts: tuple[str, ...]
    path: str = "/"
    exact: bool = False
    methods: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    conditions: tuple[RequestCondition, ...] = ()


_TOKEN_RE = re.compile(
    r"""\s*(?:(?P<op>&&|\|\||[!(),])|(?P<name>[A-Za-z][A-Za-z0-9]*)|(?P<raw>`[^`]*`)"""
    r"""|(?P<quoted>"(?:[^"\\\n]|\\.)*"))""",
    re.ASCII,
)
_Token = tuple[str, str, int]  # kind, text, position


def tokenize(rule: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(rule):
        if rule[position:].strip() == "":
            break
        match = _TOKEN_RE.match(rule, position)
        if match is None or match.lastgroup is None:
            raise RuleError(f"cannot read the rule at character {position + 1}: "
                            f"{rule[position:position + 20]!r}")  # fmt: skip
        kind, text, start = (
            match.lastgroup,
            match.group(match.lastgroup),
            match.start(match.lastgroup),
        )
        if kind == "raw":
            kind, text = "string", text[1:-1]
        elif kind == "quoted":
            kind, text = "string", re.sub(r"\\(.)", r"\1", text[1:-1])
        tokens.append((kind, text, start))
        position = match.end()
    return tokens


def _canonical_name(name: str, syntax: str) -> str:
    """The matcher Traefik reads `name` as under `syntax`: its own spelling, lower, UPPER or
    Title case (pkg/rules/parser.go); any other is refused as Traefik refuses it."""
    found = _spelled(name, syntax)
    if found is not None:
        return found
    other = V2 if syntax == V3 else V3
    if _spelled(name, other) is not None:
        fix = (
            "set the router's ruleSyntax=v2, or write it in v3 (Header, HeaderRegexp; one "
            "value per matcher)"
            if syntax == V3
            else "set the router's ruleSyntax=v3"
        )
        raise RuleError(f"{name} is a Traefik {other} matcher and the rule is read as {syntax}: "
                        f"{fix}")  # fmt: skip
    raise RuleError(f"{name} is not a Traefik {syntax} matcher (they are "
                    f"{', '.join(_MATCHERS[syntax])}); Traefik refuses the rule")  # fmt: skip


def _spelled(name: str, syntax: str) -> str | None:
    for canonical in _MATCHERS[syntax]:
        if name in (canonical, canonical.lower(), canonical.upper(), canonical.capitalize()):
            return canonical
    return None


def _check_values(name: str, args: list[str], syntax: str) -> None:
    """Traefik's checks: no empty value (CheckRule), and v3's number of values."""
    if not args:
        raise RuleError(f"{name}() has no value")
    if any(arg == "" for arg in args):
        raise RuleError(f"{name} has an empty value; Traefik refuses the rule (\"empty args for "
                        f"matcher {name}\"): give it a value, or drop the matcher")  # fmt: skip
    counts = _MATCHERS[syntax][name]
    if counts is not None and len(args) not in counts:
        several = syntax == V3 and len(args) > max(counts)
        raise RuleError(
            f"{name} takes {' or '.join(map(str, counts))} value(s) in Traefik v3 and has "
            f"{len(args)}"
            + ("; v3 reads one value per matcher: write them as alternatives, e.g. "
               f"{name}(`a`) || {name}(`b`), or set the router's ruleSyntax=v2"
               if several else "")
        )  # fmt: skip


class _Parser:
    def __init__(self, rule: str, syntax: str) -> None:
        self.tokens = tokenize(rule)
        self.index = 0
        self.syntax = syntax

    def peek(self) -> str | None:
        """The next operator; "" for a name or value; None at the end."""
        if self.index >= len(self.tokens):
            return None
        kind, text, _ = self.tokens[self.index]
        return text if kind == "op" else ""

    def take(self, expected: str | None = None) -> _Token:
        if self.index >= len(self.tokens):
            raise RuleError(f"the rule ends early; expected {expected or 'more'}")
        token = self.tokens[self.index]
        if expected is not None and (token[0] != "op" or token[1] != expected):
            raise RuleError(f"expected {expected!r} at character {token[2] + 1}, found "
                            f"{token[1]!r}")  # fmt: skip
        self.index += 1
        return token

    def parse(self) -> Node:
        node = self.any(0)
        if self.index < len(self.tokens):
            _, text, position = self.tokens[self.index]
            raise RuleError(f"unexpected {text!r} at character {position + 1}")
        return node

    def any(self, depth: int) -> Node:
        items = [self.all(depth)]
        while self.peek() == "||":
            self.take("||")
            items.append(self.all(depth))
        return items[0] if len(items) == 1 else Any(tuple(items))

    def all(self, depth: int) -> Node:
        items = [self.unary(depth)]
        while self.peek() == "&&":
            self.take("&&")
            items.append(self.unary(depth))
        return items[0] if len(items) == 1 else All(tuple(items))

    def unary(self, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise RuleError(f"nests deeper than {MAX_DEPTH} levels")
        kind, text, position = self.take()
        if kind == "op" and text == "!":
            return Not(self.unary(depth + 1))
        if kind == "op" and text == "(":
            node = self.any(depth + 1)
            self.take(")")
            return node
        if kind != "name":
            raise RuleError(f"expected a matcher such as Host(`a.example.com`) at character "
                            f"{position + 1}, found {text!r}")  # fmt: skip
        return self.matcher(text)

    def matcher(self, name: str) -> Node:
        self.take("(")
        args: list[str] = []
        while self.peek() != ")":
            if args:
                self.take(",")
            if self.peek() is None:
                raise RuleError(f"{name}( is not closed")
            kind, text, position = self.take()
            if kind != "string":
                raise RuleError(f"{name}: expected a `quoted` value at character {position + 1}")
            args.append(text)
        self.take(")")
        name = _canonical_name(name, self.syntax)
        _check_values(name, args, self.syntax)
        if (
            self.syntax == V2
            and name == "HostRegexp"
            and not any(self._template(name, arg) for arg in args)
        ):
            name = "Host"  # gorilla/mux's host template without a variable: the names as written
        if self.syntax == V2 and name == "Query":
            return _v2_query(args)
        if name.lower() in _HOST or name.lower() in _PATHS or name.lower() == _METHOD:
            # v2: any of several values (v3 has only one)
            matchers = tuple(Matcher(name, (arg,), self._template(name, arg)) for arg in args)
            return matchers[0] if len(matchers) == 1 else Any(matchers)
        if name == "HostRegexp":
            matchers = tuple(Matcher(name, (arg,), self._template(name, arg)) for arg in args)
            return matchers[0] if len(matchers) == 1 else Any(matchers)
        return Matcher(name, tuple(args))

    def _template(self, name: str, value: str) -> bool:
        """Whether v2 reads the value as gorilla/mux's template (v3 reads paths as written)."""
        if self.syntax != V2 or name not in ("Path", "PathPrefix", "HostRegexp"):
            return False
        # A host template that is no name is matched as written (so, by no real host).
        literal = value.isascii() and not _V2_NAME_RE.match(value)  # non-ASCII: refused
        return has_variables(value) or (name == "HostRegexp" and literal)


_V2_NAME_RE = re.compile(r"^[A-Za-z0-9.-]+$", re.ASCII)


def _v2_query(args: list[str]) -> Node:
    """v2's Query(`k=v`, …): every pair, each a key with that value (v3's Query(`k`, `v`)); a
    gorilla/mux template in one is refused."""
    pairs = []
    for arg in args:
        key, equals, value = arg.partition("=")
        if not equals or not key or has_variables(arg):
            raise RuleError(f"Query({', '.join(args)}): {arg!r} is not a `key=value` pair "
                            "certbotless reads (gorilla/mux templates are not): set the "
                            "router's ruleSyntax=v3 and write Query(`key`, `value`) or "
                            "QueryRegexp")  # fmt: skip
        pairs.append(Matcher("Query", (key, value)))
    return pairs[0] if len(pairs) == 1 else All(tuple(pairs))


def parse_rule(rule: str, syntax: str = V3) -> Node:
    if len(rule) > MAX_RULE_LENGTH:
        raise RuleError(f"is {len(rule)} characters long; at most {MAX_RULE_LENGTH} are read")
    if not rule.strip():
        raise RuleError("is empty")
    return _Parser(rule, syntax).parse()


_Literal = tuple[bool, Matcher]  # negated, matcher
_Conjunction = tuple[_Literal, ...]


def _dnf(node: Node, negated: bool = False) -> list[_Conjunction]:
    """Disjunctive normal form, `!` pushed down to the matchers (De Morgan)."""
    if isinstance(node, Matcher):
        return [((negated, node),)]
    if isinstance(node, Not):
        return _dnf(node.item, not negated)
    parts = [_dnf(item, negated) for item in node.items]
    if isinstance(node, Any) != negated:  # an `||`, or a negated `&&`
        return [conjunction for part in parts for conjunction in part][: MAX_ALTERNATIVES + 1]
    product: list[_Conjunction] = [()]
    for part in parts:
        product = [left + right for left in product for right in part]
        if len(product) > MAX_ALTERNATIVES:
            break
    return product


def compile_rule(rule: str, syntax: str = V3) -> tuple[Alternative, ...]:
    """The rule as host sets by path, in the order written; one Alternative per path. `syntax`:
    Traefik's ruleSyntax, v3 (its default) or v2."""
    conjunctions = _dnf(parse_rule(rule, syntax))
    if len(conjunctions) > MAX_ALTERNATIVES:
        raise RuleError(f"expands to more than {MAX_ALTERNATIVES} alternatives; simplify it")
    # (where, for every host) → hosts: an alternative without a Host is every host's
    places: dict[tuple[_Where, bool], list[str]] = {}
    for conjunction in conjunctions:
        compiled = _conjunction(conjunction)
        if compiled is None:  # can never match (two different hosts, disjoint paths)
            continue
        hosts, where = compiled
        found = places.setdefault((where, hosts is None), [])
        found += [h for h in hosts or () if h not in found]
    if not places:
        raise RuleError("can never match (it asks for two different hosts or paths at once)")
    return _methods_united(tuple(Alternative(tuple(h), *where) for (where, _), h in places.items()))


def _methods_united(alternatives: tuple[Alternative, ...]) -> tuple[Alternative, ...]:
    """Alternatives that differ by their methods only, on one host and path, are one: their
    methods united (none: every method)."""
    per_place: dict[tuple[str, Alternative], list[Alternative]] = {}
    for alternative in alternatives:
        for host in alternative.hosts or ("",):  # "": every host
            place = replace(alternative, hosts=(), methods=())
            per_place.setdefault((host, place), []).append(alternative)
    united: dict[tuple[_Where, bool], list[str]] = {}
    for (host, place), found in per_place.items():
        methods = set() if any(not a.methods for a in found) else {
            m for a in found for m in a.methods
        }  # fmt: skip
        where = (place.path, place.exact, tuple(sorted(methods)), place.headers,
                 place.conditions)  # fmt: skip
        united.setdefault((where, host == ""), []).extend([host] if host else [])
    return tuple(Alternative(tuple(h), *where) for (where, _), h in united.items())


# path, exact, methods, headers, other conditions
_Conditions = tuple[RequestCondition, ...]
_Where = tuple[str, bool, tuple[str, ...], tuple[tuple[str, str], ...], _Conditions]


def _conjunction(literals: _Conjunction) -> tuple[list[str] | None, _Where] | None:
    """The conjunction's hosts (None: every host) and where it matches; None if nowhere."""
    hosts: set[str] | None = None
    order: list[str] = []
    path, exact = "/", False
    methods: set[str] | None = None
    headers: dict[str, str] = {}
    conditions: set[RequestCondition] = set()
    for negated, matcher in literals:
        kind = matcher.name.lower()
        if kind in _HOST or kind in _PATHS or kind in (_HOST_REGEXP, _PATH_REGEXP):
            condition = _place_condition(matcher, negated)
            if condition is not None:
                conditions.add(condition)
                continue
        if kind in _HOST or kind == _HOST_REGEXP:
            host = _host_of(matcher)
            order.append(host)
            hosts = {host} if hosts is None else hosts & {host}
        elif kind in _PATHS:
            merged = _narrower(path, exact, matcher.args[0], _PATHS[kind])
            if merged is None:
                return None
            path, exact = merged
        elif kind == _METHOD and not negated:
            method = _method_of(matcher)
            methods = {method} if methods is None else methods & {method}
        elif kind in _HEADER and not negated:
            name, value = _header_of(matcher)
            if headers.setdefault(name.lower(), value) != value:
                return None
        else:
            conditions.add(_condition_of(matcher, negated))
    if hosts == set() or methods == set():
        return None
    where = (path, exact, tuple(sorted(methods or ())), tuple(sorted(headers.items())),
             tuple(sorted(conditions)))  # fmt: skip
    if hosts is None:
        return None, where
    return [h for h in dict.fromkeys(order) if h in hosts], where


def _place_condition(matcher: Matcher, negated: bool) -> RequestCondition | None:
    """A host or path matcher checked per request: negated, a pattern, or a template. None for
    a plain Host or path, which chooses the server and path instead."""
    kind, value = matcher.name.lower(), matcher.args[0]
    if kind in _PATHS and not value.startswith("/"):
        raise RuleError(f"{_shown(matcher)}: the path does not start with a '/'; Traefik "
                        "refuses the rule")  # fmt: skip
    try:
        if matcher.template:
            host = kind == _HOST_REGEXP
            pcre = template_pcre(value, host=host, prefix=kind == "pathprefix")
            check = Check.HOST_REGEXP if host else Check.PATH_REGEXP
            return RequestCondition(check, (value,), negated, pcre)
        if kind == _PATH_REGEXP or (kind == _HOST_REGEXP and not _LITERAL_HOST_RE.match(value)):
            check = Check.PATH_REGEXP if kind == _PATH_REGEXP else Check.HOST_REGEXP
            return RequestCondition(check, (value,), negated, to_pcre(value).text)
    except (TemplateError, NotPortable) as error:
        raise RuleError(f"{_shown(matcher)}: {error}; Traefik refuses the rule or "
                        "certbotless cannot read it as Go does") from None  # fmt: skip
    if not negated:
        return None
    if kind in _PATHS:
        return RequestCondition(Check.PATH if _PATHS[kind] else Check.PATH_PREFIX, (value,), True)
    return RequestCondition(Check.HOST, (_host_of(matcher).lower().rstrip("."),), True)


def _condition_of(matcher: Matcher, negated: bool) -> RequestCondition:
    """A matcher nginx checks per request (in the location, before anything else)."""
    kind = matcher.name.lower()
    if kind == _METHOD:
        return RequestCondition(Check.METHOD, (_method_of(matcher),), negated)
    if kind in _HEADER:
        name, value = _header_of(matcher)
        return RequestCondition(Check.HEADER, (name.lower(), value), negated)
    if kind == _CLIENT_IP:
        return RequestCondition(Check.CLIENT_IP, _networks_of(matcher), negated)
    try:
        if kind in _HEADER_REGEXP:
            name, pattern = _header_of(matcher, pattern=True)
            return RequestCondition(Check.HEADER_REGEXP, (name.lower(), pattern), negated,
                             header_pcre(pattern))  # fmt: skip
        if kind in _QUERY:
            return _query_of(matcher, negated)
    except ValueError as error:
        raise RuleError(f"{_shown(matcher)}: {error}; certbotless takes the part of Go's RE2 "
                        "that nginx's PCRE reads alike") from None  # fmt: skip
    raise RuleError(f"{_shown(matcher)}: {matcher.name} cannot be expressed in nginx here")


def _query_of(matcher: Matcher, negated: bool) -> RequestCondition:
    key = matcher.args[0]
    regexp = matcher.name.lower() == "queryregexp" and len(matcher.args) == 2
    check = Check.QUERY_REGEXP if regexp else Check.QUERY
    if len(matcher.args) == 1:
        return RequestCondition(check, (key,), negated, query_pcre(key, None))
    value = matcher.args[1]
    pcre = query_pcre(key, value if regexp else query_value_pattern(value))
    return RequestCondition(check, (key, value), negated, pcre)


def _networks_of(matcher: Matcher) -> tuple[str, ...]:
    """ClientIP's addresses and CIDR networks, as Traefik's ip.NewChecker reads them."""
    networks = []
    for value in matcher.args:
        _, slash, bits = value.partition("/")
        try:
            if "%" in value or (slash and not bits.isdigit()):
                raise ValueError(value)
            networks.append(ipaddress.ip_network(value, strict=False).with_prefixlen)
        except ValueError:
            raise RuleError(f"{_shown(matcher)}: {value} is not an IP address or CIDR network; "
                            "Traefik refuses the rule") from None  # fmt: skip
    return tuple(dict.fromkeys(networks))


def _method_of(matcher: Matcher) -> str:
    method = matcher.args[0].upper()
    if not _METHOD_RE.match(method):
        raise RuleError(f"{_shown(matcher)}: not an HTTP method")
    return method


def _header_of(matcher: Matcher, pattern: bool = False) -> tuple[str, str]:
    if len(matcher.args) != 2:
        raise RuleError(f"{_shown(matcher)}: takes a header name and its value")
    name, value = matcher.args
    if pattern and not HEADER_NAME_RE.match(name):
        raise RuleError(f"{_shown(matcher)}: header names are letters, digits and '-'")
    if not pattern and (not HEADER_NAME_RE.match(name) or not HEADER_VALUE_RE.match(value)):
        raise RuleError(f"{_shown(matcher)}: header names are letters, digits and '-', values "
                        "printable ASCII without '\"', '$' and '\\'")  # fmt: skip
    return name, value


def _narrower(path: str, exact: bool, other: str, other_exact: bool) -> tuple[str, bool] | None:
    """Both path conditions at once, or None when no path meets both."""
    if exact and other_exact:
        return (path, True) if path == other else None
    if exact:
        return (path, True) if path.startswith(other) else None
    if other_exact:
        return (other, True) if other.startswith(path) else None
    if other.startswith(path):
        return other, False
    return (path, False) if path.startswith(other) else None


def _host_of(matcher: Matcher) -> str:
    value = matcher.args[0]
    if matcher.name.lower() != _HOST_REGEXP:
        return value
    literal = _LITERAL_HOST_RE.match(value)
    assert literal is not None  # other patterns are conditions (_place_condition)
    return literal.group(1).replace("\\.", ".")


def _shown(matcher: Matcher) -> str:
    return f"{matcher.name}({', '.join('`' + a + '`' for a in matcher.args)})"


def default_priority(rule: str) -> int:
    """Traefik's: the rule's length, so longer (usually narrower) rules are tried first."""
    return len(rule)


_V1_MATCHERS = {"host": "Host", "hostregexp": "HostRegexp", "path": "Path",
                "pathprefix": "PathPrefix", "pathstrip": "Path",
                "pathprefixstrip": "PathPrefix"}  # fmt: skip
V1_STRIPPING = {"pathstrip", "pathprefixstrip"}


def parse_v1_rule(rule: str) -> tuple[str, tuple[str, ...]]:
    """Traefik 1.x's `Host:a,b;PathPrefixStrip:/x` → the v2 rule, and the prefixes to strip."""
    parts, strip = [], []
    for part in rule.split(";"):
        name, colon, values = part.strip().partition(":")
        kind = name.strip().lower()
        if not colon or kind not in _V1_MATCHERS:
            raise RuleError(f"{part.strip()!r}: certbotless reads Host:, HostRegexp: (names "
                            "without a {variable}), Path:, PathPrefix:, PathStrip: and "
                            "PathPrefixStrip: of Traefik 1's rules")  # fmt: skip
        items = [v.strip() for v in values.split(",") if v.strip()]
        if not items or any("`" in item for item in items):
            raise RuleError(f"{part.strip()!r} has no usable value")
        relative = next((i for i in items if not kind.startswith("host") and
                         not i.startswith("/")), None)  # fmt: skip
        if relative is not None:
            raise RuleError(f"{part.strip()!r}: {relative} does not start with '/', so Traefik 1 "
                            "routes no request to it (every request's path does): write "
                            f"{name.strip()}:/{relative}")  # fmt: skip
        parts.append(f"{_V1_MATCHERS[kind]}({', '.join('`' + v + '`' for v in items)})")
        if kind in V1_STRIPPING:
            strip += items
    return " && ".join(parts), tuple(strip)
