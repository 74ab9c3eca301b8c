import pytest

from certbotless.discovery import EdgeNotFound, discover, find_edge_service
from certbotless.model import KeyType, ServiceInfo


def labelled(name: str, labels: dict[str, str]) -> ServiceInfo:
    return ServiceInfo(name=name, labels=labels)


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
            labelled("lg", {**labels, "certbotless.path": "/en_core_web_lg"}),
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
        (
            {"certbotless.domains": "10.0.0.1", "certbotless.port": "80"},
            "certbotless.domains",
            "IP address",
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


def test_idn_hostnames_become_punycode() -> None:
    found = discover(
        [labelled("x", {"certbotless.domains": "bücher.example", "certbotless.port": "80"})]
    )
    assert found.routes[0].hosts == ("xn--bcher-kva.example",)


def test_edge_service_is_found_by_label() -> None:
    services = [labelled("edge_nginx", {"certbotless.edge": "true"}), labelled("x", {})]
    assert find_edge_service(services) == "edge_nginx"
    with pytest.raises(EdgeNotFound, match="CERTBOTLESS_NGINX_SERVICE"):
        find_edge_service([labelled("x", {})])
    with pytest.raises(EdgeNotFound, match="several"):
        find_edge_service([*services, labelled("y", {"certbotless.edge": "yes"})])
