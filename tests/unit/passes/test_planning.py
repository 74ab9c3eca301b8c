from dataclasses import replace
from datetime import UTC, datetime, timedelta

from certbotless.edge.deployer import edge_references
from certbotless.model import CertSpec, KeyType, Route, StoredCert
from certbotless.passes.planning import plan_certificates, replaced_certificates
from certbotless.swarm.store import latest_per_name
from tests.support.factories import stored_cert

SPEC = CertSpec("app.example.test", ("app.example.test",))
ISSUED = datetime(2026, 1, 1, tzinfo=UTC)


def current(*certs: StoredCert) -> dict[str, StoredCert]:
    return latest_per_name(list(certs), ISSUED)


def test_new_certificate_is_planned() -> None:
    plan = plan_certificates([SPEC], {}, ISSUED)
    assert plan.to_issue == (SPEC,)
    assert plan.reasons == {"app.example.test": "new"}


def test_valid_certificate_is_left_alone_until_a_third_of_its_life_remains() -> None:
    cert = current(stored_cert(issued=ISSUED, lifetime=timedelta(days=90)))
    assert plan_certificates([SPEC], cert, ISSUED + timedelta(days=59, hours=23)).to_issue == ()
    assert plan_certificates([SPEC], cert, ISSUED + timedelta(days=60)).to_issue == (SPEC,)


def test_short_lived_certificates_renew_on_the_same_fraction() -> None:
    cert = current(stored_cert(issued=ISSUED, lifetime=timedelta(minutes=3)))
    assert plan_certificates([SPEC], cert, ISSUED + timedelta(seconds=119)).to_issue == ()
    assert plan_certificates([SPEC], cert, ISSUED + timedelta(seconds=120)).to_issue == (SPEC,)


def test_the_cas_renewal_window_overrides_the_lifetime_rule() -> None:
    cert = current(stored_cert(issued=ISSUED, lifetime=timedelta(days=90)))
    early = {SPEC.name: ISSUED + timedelta(days=10)}
    now = ISSUED + timedelta(days=11)
    plan = plan_certificates([SPEC], cert, now, renew_at=early)
    assert plan.to_issue == (SPEC,)
    assert plan_certificates([SPEC], cert, now).to_issue == ()


def test_renewals_replace_the_version_in_use_by_its_ari_id() -> None:
    old = replace(stored_cert(issued=ISSUED), ari_id="aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE")
    moved = CertSpec("app.example.test", ("elsewhere.example.test",))
    assert replaced_certificates(plan_certificates([SPEC], current(old), ISSUED, {SPEC.name})) == {
        SPEC.name: old.ari_id
    }
    # RFC 9773: a replacement shares at least one name with what it replaces.
    assert replaced_certificates(plan_certificates([moved], current(old), ISSUED)) == {}


def test_changed_domains_or_key_type_or_force_reissue() -> None:
    cert = current(stored_cert(issued=ISSUED))
    now = ISSUED + timedelta(days=1)
    wider = CertSpec("app.example.test", ("app.example.test", "www.example.test"))
    rsa = CertSpec("app.example.test", ("app.example.test",), KeyType.RSA2048)
    assert plan_certificates([wider], cert, now).reasons["app.example.test"] == "domains changed"
    assert plan_certificates([rsa], cert, now).reasons["app.example.test"] == "key type changed"
    forced = plan_certificates([SPEC], cert, now, forced={"app.example.test"})
    assert forced.to_issue == (SPEC,)


def test_latest_version_wins() -> None:
    old = stored_cert(issued=ISSUED, version="1")
    new = stored_cert(issued=ISSUED + timedelta(days=30), version="2")
    assert latest_per_name([new, old], ISSUED)["app.example.test"] is new


def test_edge_mounts_conf_and_only_routed_certificates() -> None:
    routed = stored_cert()
    unrouted = stored_cert(name="other.example.test", domains=("other.example.test",))
    route = Route("demo_app", ("app.example.test",), 8000)
    refs = edge_references(
        [route],
        {c.name: c for c in (routed, unrouted)},
        {
            "/etc/nginx/nginx.conf": ("cbl-nginx-x", "confid"),
            "/etc/nginx/certbotless/hosts/7f.conf": ("cbl-nginx-y", "hostsid"),
        },
        "/etc/nginx/certs",
    )
    assert [(r.kind, r.target, oct(r.mode)) for r in refs] == [
        ("config", "/etc/nginx/nginx.conf", "0o444"),
        ("config", "/etc/nginx/certbotless/hosts/7f.conf", "0o444"),
        ("config", "/etc/nginx/certs/app.example.test/fullchain.pem", "0o444"),
        ("secret", "/etc/nginx/certs/app.example.test/privkey.pem", "0o400"),
    ]


def test_certificates_from_another_ca_are_replaced_without_ari() -> None:
    staging = replace(
        stored_cert(issued=ISSUED),
        directory_url="https://acme-staging-v02.api.letsencrypt.org/directory",
        ari_id="aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE",
    )
    production = "https://acme-v02.api.letsencrypt.org/directory"
    plan = plan_certificates([SPEC], current(staging), ISSUED + timedelta(days=1), (), None,
                             production)  # fmt: skip
    assert plan.reasons == {SPEC.name: f"issued by another CA ({staging.directory_url})"}
    # Another CA's ARI identifier means nothing to this one.
    assert replaced_certificates(plan) == {}
    same_ca = plan_certificates([SPEC], current(staging), ISSUED + timedelta(days=1), (), None,
                                staging.directory_url)  # fmt: skip
    assert same_ca.to_issue == ()
