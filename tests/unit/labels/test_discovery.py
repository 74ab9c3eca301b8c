import pytest

from certbotless.labels.settle import EdgeNotFound, discover, find_edge_service
from certbotless.model import KeyType
from tests.support.factories import labelled

BASE = {"certbotless.domains": "a.example.com", "certbotless.port": "80"}
FULLWIDTH = {ord(digit): ord(digit) + 0xFEE0 for digit in "0123456789"}  # for str.translate


def test_labelled_service_becomes_route_and_spec() -> None:
    found = discover(
        [
            labelled(
                "demo_app",
                {
                    "certbotless.domains": "App.Example.test, www.example.test",
                    "certbotless.port": "8000",
                    "certbotless.path": "/service1",
                    "certbotless.key_type": "rsa2048",
                },
            ),
            labelled("other", {"unrelated": "x"}),
        ]
    )
    assert found.problems == ()
    (route,) = found.routes
    assert route.hosts == ("app.example.test", "www.example.test")
    assert (route.service, route.port, route.path, route.redirect_to_https) == (
        "demo_app",
        8000,
        "/service1",
        True,
    )
    (spec,) = found.specs
    assert spec.name == "app.example.test"
    assert spec.key_type is KeyType.RSA2048


def test_services_sharing_a_host_share_one_certificate() -> None:
    labels = {"certbotless.domains": "api.example.com", "certbotless.port": "80"}
    found = discover(
        [
            labelled("sm", {**labels, "certbotless.path": "/en_core_web_sm"}),
            # lg owns the host (the first by name, neither's age known) and lets sm in
            labelled(
                "lg", {**labels, "certbotless.path": "/en_core_web_lg", "certbotless.share": "sm"}
            ),
        ]
    )
    assert len(found.routes) == 2
    assert len(found.specs) == 1


@pytest.mark.parametrize(
    ("labels", "label", "fragment"),
    [
        (
            {"certbotless.domains": "*.example.com", "certbotless.port": "80"},
            "certbotless.domains",
            "wildcard",
        ),
        (
            {"certbotless.domains": "localhost", "certbotless.port": "80"},
            "certbotless.domains",
            "fully qualified",
        ),
        (
            {"certbotless.domains": "a..example.com", "certbotless.port": "80"},
            "certbotless.domains",
            "not a valid hostname",
        ),
        (  # xn-- but no Punycode
            {"certbotless.domains": "xn--99999999999.example.com", "certbotless.port": "80"},
            "certbotless.domains",
            "not a valid hostname",
        ),
        (
            {"certbotless.domains": "10.0.0.256", "certbotless.port": "80"},
            "certbotless.domains",
            "neither a hostname nor an IPv4 address",
        ),
        ({"certbotless.domains": "a.example.com"}, "certbotless.port", "missing"),
        (
            {"certbotless.domains": "a.example.com", "certbotless.port": "70000"},
            "certbotless.port",
            "1 to 65535",
        ),
        (
            {
                "certbotless.domains": "a.example.com",
                "certbotless.port": "80",
                "certbotless.path": "api",
            },
            "certbotless.path",
            "start with /",
        ),
        (
            {
                "certbotless.domains": "a.example.com",
                "certbotless.port": "80",
                "certbotless.redirect": "maybe",
            },
            "certbotless.redirect",
            "true or false",
        ),
        (
            {
                "certbotless.domains": "a.example.com",
                "certbotless.port": "80",
                "certbotless.key_type": "dsa",
            },
            "certbotless.key_type",
            "ec256",
        ),
        *[
            ({**BASE, label: value}, label, fragment)
            for label, value, fragment in [
                ("certbotless.path", "/a b", "URL path characters"),
                ("certbotless.path", "/a/../b", "URL path characters"),
                ("certbotless.max_body_size", "20 MB", "size like 20m"),
                ("certbotless.max_body_size", "-1m", "size like 20m"),
                ("certbotless.auth_url", "auth:8000/check", "http:// or https:// URL"),
                ("certbotless.auth_url", "ftp://auth/check", "http:// or https:// URL"),
                ("certbotless.auth_url", "http://auth/check;evil", "cannot hold"),
                ("certbotless.hsts", "sometimes", "true or false"),
                ("certbotless.errors", "http://errors/404.html", "must contain {status}"),
                ("certbotless.errors", "errors/{status}.html", "http:// or https:// URL"),
                # Reproducers: each once crashed discover() or broke nginx -t for every service.
                ("certbotless.port", "8²", "1 to 65535"),
                ("certbotless.port", "80".translate(FULLWIDTH), "1 to 65535"),
                ("certbotless.max_body_size", "20m".translate(FULLWIDTH), "size like 20m"),
                ("certbotless.auth_url", "http://auth/{x}", "cannot hold"),
                ("certbotless.auth_url", "http://auth/{status}", "cannot hold"),
                ("certbotless.errors", "http://e/{status}/{x}.html", "cannot hold"),
                ("certbotless.auth_url", "http://[auth/check", "http:// or https:// URL"),
                ("certbotless.auth_url", "http://auth:99999/check", "http:// or https:// URL"),
                ("certbotless.path", "/.well-known/acme-challenge", "reserved for the edge"),
                ("certbotless.path", "/.well-known/acme-challenge/x", "reserved for the edge"),
                ("certbotless.path", "/.certbotless", "reserved for the edge"),
                ("certbotless.path", "/.certbotless/auth/0", "reserved for the edge"),
                ("certbotless.timeout", "5 min", "duration like 300s"),
                ("certbotless.timeout", "2d", "duration like 300s"),
                ("certbotless.timeout", "25h", "at most 1 day"),
                ("certbotless.timeout", "0s", "duration like 300s"),
                ("certbotless.timeout", "300s".translate(FULLWIDTH), "duration like 300s"),
                ("certbotless.domains", "10.0.0.1".translate(FULLWIDTH), "IP address"),
            ]
        ],
        (
            {
                **BASE,
                "certbotless.errors": "http://e/{status}.html",
                "certbotless.errors_status": "200-299",
            },
            "certbotless.errors_status",
            "300 to 599",
        ),
        (
            {"certbotless.domains": "a." + "b" * 64 + ".example.com", "certbotless.port": "80"},
            "certbotless.domains",
            "at most 63 characters",
        ),
        (
            {"certbotless.domains": "[2001:db8::g]", "certbotless.port": "80"},
            "certbotless.domains",
            "neither an IPv6 address nor a hostname",
        ),
    ],
)
def test_bad_label_is_reported_and_others_go_on(
    labels: dict[str, str], label: str, fragment: str
) -> None:
    good = labelled("good", {"certbotless.domains": "good.example.com", "certbotless.port": "80"})
    found = discover([labelled("bad", labels), good])
    (problem,) = found.problems
    assert problem.service == "bad"
    assert problem.label == label
    assert fragment in problem.message
    assert [r.service for r in found.routes] == ["good"]


@pytest.mark.parametrize(
    ("name", "punycode"),
    [
        ("bücher.example", "xn--bcher-kva.example"),
        # IDNA 2008 keeps ß (IDNA 2003 made it "strasse", another domain); UTS #46 maps case.
        ("Straße.example.com", "xn--strae-oqa.example.com"),
        ("xn--strae-oqa.example.com", "xn--strae-oqa.example.com"),
        # Punycode IDNA 2008 refuses (an emoji) but DNS, browsers and Traefik take.
        ("xn--9t9h.com", "xn--9t9h.com"),
    ],
)
def test_idn_hostnames_become_punycode(name: str, punycode: str) -> None:
    found = discover([labelled("x", {"certbotless.domains": name, "certbotless.port": "80"})])
    assert found.problems == ()
    assert found.routes[0].hosts == (punycode,)


def test_path_prefixes_that_only_look_reserved_are_routes() -> None:
    found = discover(
        [
            labelled(
                "a",
                {**BASE, "certbotless.path": "/.well-known/security.txt", "certbotless.share": "b"},
            ),
            labelled("b", {**BASE, "certbotless.path": "/.certbotless-docs"}),
        ]
    )
    assert found.problems == ()
    assert len(found.routes) == 2


@pytest.mark.parametrize("value", ["300s", "300", "5m", "24h", "1500ms"])
def test_timeout_sets_the_route_timeout(value: str) -> None:
    (route,) = discover([labelled("x", {**BASE, "certbotless.timeout": value})]).routes
    assert route.timeout == value


def test_hsts_beside_a_plain_http_route_on_the_same_host_is_reported() -> None:
    found = discover(
        [
            labelled("site", {**BASE, "certbotless.hsts": "true"}, stack="web"),
            labelled("legacy", {**BASE, "certbotless.path": "/legacy", "certbotless.redirect": "no",
                                "certbotless.share": "site"}, stack="web"),
            labelled("other", {**BASE, "certbotless.domains": "b.example.com",
                               "certbotless.hsts": "1"}),
        ]
    )  # fmt: skip
    (problem,) = found.problems
    assert (problem.service, problem.label) == ("site", "certbotless.hsts")
    assert "a.example.com/legacy is plain HTTP (legacy has certbotless.redirect=false)" in str(
        problem
    )
    assert "gets no HSTS" in problem.message
    assert {r.service for r in found.routes} == {"site", "legacy", "other"}


def test_the_edge_is_the_labelled_service_of_certbotless_own_stack() -> None:
    own = labelled("edge_certbotless", {}, stack="edge")
    nginx = labelled("edge_nginx", {"certbotless.edge": "true"}, stack="edge")
    # Another stack's service, or one in no stack, cannot make itself the edge with the label.
    strangers = [labelled("team_x", {"certbotless.edge": "true"}, stack="team"),
                 labelled("loose", {"certbotless.edge": "yes"})]  # fmt: skip
    assert find_edge_service([own, nginx, *strangers], "edge_certbotless") == "edge_nginx"
    with pytest.raises(EdgeNotFound, match="no service of certbotless's stack edge"):
        find_edge_service([own, *strangers], "edge_certbotless")
    with pytest.raises(EdgeNotFound, match="several"):
        find_edge_service(
            [own, nginx, labelled("edge_y", {"certbotless.edge": "on"}, stack="edge")],
            "edge_certbotless",
        )
    with pytest.raises(EdgeNotFound, match="CERTBOTLESS_NGINX_SERVICE"):
        find_edge_service([own, nginx, *strangers], None)
    with pytest.raises(EdgeNotFound, match="in no stack"):
        find_edge_service([labelled("loose", {"certbotless.edge": "yes"})], "loose")
    found = discover([own, nginx, *strangers], edge="edge_nginx")
    assert sorted((p.service, p.label) for p in found.problems) == [
        ("loose", "certbotless.edge"), ("team_x", "certbotless.edge"),
    ]  # fmt: skip
    assert "ignored: the edge is edge_nginx" in found.problems[0].message


def test_seed_labels_become_routes_with_their_options() -> None:
    host = {"certbotless.domains": "nlp.example.test", "certbotless.port": "80"}
    found = discover(
        [
            labelled(
                "corporate",
                {
                    **host,
                    "certbotless.errors": "http://errors:80/{status}.html",
                    "certbotless.hsts": "true",
                },
                stack="nlp",
            ),
            labelled(
                "backoffice",
                {
                    **host,
                    "certbotless.path": "/backoffice",
                    "certbotless.max_body_size": "20M",
                    "certbotless.share": "corporate,sm",
                },
                stack="nlp",
            ),
            labelled(
                "sm",
                {
                    **host,
                    "certbotless.path": "/en_core_web_sm",
                    "certbotless.auth_url": "http://auth:8000/check",
                },
                stack="nlp",
            ),
        ]
    )
    assert found.problems == ()
    by_service = {route.service: route for route in found.routes}
    assert by_service["backoffice"].max_body_size == "20m"
    assert by_service["sm"].auth_url == "http://auth:8000/check"
    errors = by_service["corporate"].error_pages
    assert errors is not None and errors.statuses == tuple(c for c in range(400, 600) if c != 499)
    assert by_service["corporate"].hsts
    (spec,) = found.specs
    assert spec.domains == ("nlp.example.test",)


def test_a_host_and_path_stay_with_the_service_that_claimed_them_first() -> None:
    found = discover(
        [
            labelled("green", BASE, created=5),
            labelled("blue", {**BASE, "certbotless.domains": "a.example.com,b.example.com",
                              "certbotless.share": "green,other"}, created=0),
            labelled("other", {**BASE, "certbotless.path": "/other"}, created=9),
        ]
    )  # fmt: skip
    (problem,) = found.problems
    assert (problem.service, problem.value) == ("green", "a.example.com")
    assert "a.example.com/ is blue's, which claimed it first" in problem.message
    assert {(r.service, r.hosts, r.path) for r in found.routes} == {
        ("blue", ("a.example.com", "b.example.com"), "/"),
        ("other", ("a.example.com",), "/other"),
    }


def test_a_service_that_shares_no_network_with_the_edge_is_reported() -> None:
    found = discover(
        [
            labelled("edge_nginx", {"certbotless.edge": "true"}, ("edge-net",)),
            labelled("reachable", BASE, ("edge-net", "backend")),
            labelled("isolated", {**BASE, "certbotless.path": "/x"}, ("backend",)),
        ],
        edge="edge_nginx",
    )
    (problem,) = found.problems
    assert (problem.service, problem.label, problem.value) == ("isolated", "networks", "backend")
    assert "attach it to edge-net" in problem.message
    assert [r.service for r in found.routes] == ["reachable"]


def test_services_naming_one_certificate_share_it() -> None:
    found = discover(
        [
            labelled(
                "a", {**BASE, "certbotless.name": "shop", "certbotless.share": "b"}, stack="shop"
            ),
            labelled(
                "b",
                {
                    **BASE,
                    "certbotless.domains": "www.a.example.com",
                    "certbotless.name": "shop",
                    "certbotless.path": "/b",
                },
                stack="shop",
            ),
        ]
    )
    (spec,) = found.specs
    assert (spec.name, spec.domains) == ("shop", ("a.example.com", "www.a.example.com"))


def test_with_an_own_nginx_conf_only_certificates_are_discovered() -> None:
    found = discover(
        [
            labelled("edge", {"certbotless.domains": "shop.example.com",
                              "certbotless.certificate.blog": "blog.example.com,www.blog.test",
                              "certbotless.certificate.Bad!": "x.example.com"}),
        ],
        routing=False,
    )  # fmt: skip
    assert found.routes == ()
    assert {(s.name, s.domains) for s in found.specs} == {
        ("shop.example.com", ("shop.example.com",)),
        ("blog", ("blog.example.com", "www.blog.test")),
    }
    (problem,) = found.problems
    assert problem.label == "certbotless.certificate.Bad!"
    assert "certbotless.certificate.shop" in problem.message


def test_with_an_own_nginx_conf_a_protection_label_is_said_to_do_nothing() -> None:
    labels = {"certbotless.domains": "shop.example.com", "certbotless.allow_from": "10.0.0.0/8",
              "certbotless.basic_auth_secret": "ops"}  # fmt: skip
    found = discover([labelled("shop", labels)], routing=False)
    assert [s.name for s in found.specs] == ["shop.example.com"]  # still ordered
    assert sorted(p.label for p in found.problems) == [
        "certbotless.allow_from", "certbotless.basic_auth_secret",
    ]  # fmt: skip
    assert all("protect it there" in p.message for p in found.problems)


def test_only_one_ip_address_is_served() -> None:
    base = {"certbotless.port": "80", "certbotless.profile": "shortlived"}
    found = discover(
        [
            labelled(
                "by_address",
                {**base, "certbotless.domains": "192.0.2.10", "certbotless.share": "mixed"},
                stack="ip",
            ),
            labelled(
                "mixed",
                {
                    **base,
                    "certbotless.domains": "shop.example.test,192.0.2.10",
                    "certbotless.path": "/shop",
                },
                stack="ip",
            ),
            labelled("second", {**base, "certbotless.domains": "192.0.2.20"}),
            labelled("no_profile", {"certbotless.port": "80", "certbotless.domains": "192.0.2.30"}),
        ]
    )
    by_service = {route.service: route.hosts for route in found.routes}
    assert by_service == {
        "by_address": ("192.0.2.10",), "mixed": ("shop.example.test", "192.0.2.10"),
    }  # fmt: skip
    specs = {spec.name: spec.domains for spec in found.specs}
    assert specs["192.0.2.10"] == ("192.0.2.10",)
    assert specs["shop.example.test"] == ("shop.example.test", "192.0.2.10")
    problems = {problem.service: problem.message for problem in found.problems}
    assert "only one IP address can be served and 192.0.2.10 is" in problems["second"]
    assert "only one IP address can be served and 192.0.2.10 is" in problems["no_profile"]


def test_an_ip_address_is_ordered_under_the_shortlived_profile_unless_a_label_names_one() -> None:
    plain = {"certbotless.port": "80"}
    for labels, profile in [({}, "shortlived"), ({"certbotless.profile": "ip"}, "ip")]:
        found = discover([labelled("v6", {**plain, **labels, "certbotless.domains": "::1"})])
        assert not found.problems
        assert [(s.name, s.domains, s.profile) for s in found.specs] == [
            ("0--1", ("::1",), profile)
        ]
    named = discover([labelled("name", {**plain, "certbotless.domains": "shop.example.test"})])
    assert [spec.profile for spec in named.specs] == [None]


def test_an_ipv6_address_is_written_as_rfc_5952_and_names_its_certificate_with_dashes() -> None:
    base = {"certbotless.port": "80", "certbotless.profile": "shortlived"}
    plain = {"certbotless.port": "80"}
    found = discover([
        labelled("v6", {**base, "certbotless.domains": "[2001:DB8:0:0::7]"}),
        labelled("port", {**plain, "certbotless.domains": "shop.example.test:8443"}),
    ])  # fmt: skip
    assert [(route.service, route.hosts) for route in found.routes] == [("v6", ("2001:db8::7",))]
    assert [(spec.name, spec.domains) for spec in found.specs] == [
        ("2001-db8--7", ("2001:db8::7",))]  # fmt: skip
    problems = {problem.service: problem.message for problem in found.problems}
    assert "neither an IPv6 address nor a hostname (a name has no port" in problems["port"]
