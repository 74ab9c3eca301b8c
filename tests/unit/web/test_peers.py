"""The status page's edge peers (web.peers): the addresses of the edge's nginx tasks, asked
again often enough that an address a stopped task gave back is not trusted for long, and at
once for a task a roll has just started."""

from __future__ import annotations

from certbotless.web.peers import ADDRESSES_MAX_AGE, ASK_AGAIN_AFTER, EdgePeers, in_networks


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_edges_task_addresses_are_asked_again_when_stale_or_unknown() -> None:
    clock, asked = Clock(), []
    answers = {"edge_nginx": frozenset({"10.0.1.5"})}

    def resolve(service: str) -> frozenset[str]:
        asked.append(service)
        return answers[service]

    peers = EdgePeers(lambda: "edge_nginx", resolve, clock)
    assert "10.0.1.5" in peers and asked == ["edge_nginx"]
    # A tenant's address: asked again at most once a second, however often it knocks.
    assert "10.0.1.9" not in peers and "10.0.1.9" not in peers and len(asked) == 1
    clock.now += ASK_AGAIN_AFTER
    answers["edge_nginx"] = frozenset({"10.0.1.5", "10.0.1.9"})  # a roll started a task
    assert "10.0.1.9" in peers and len(asked) == 2
    # The old task stopped; its address is not trusted once the answer is stale.
    answers["edge_nginx"] = frozenset({"10.0.1.9"})
    assert "10.0.1.5" in peers  # within the answer's age
    clock.now += ADDRESSES_MAX_AGE
    assert "10.0.1.5" not in peers


def test_no_edge_is_no_peer_and_a_failed_lookup_keeps_the_last_name() -> None:
    clock = Clock()
    assert "10.0.1.5" not in EdgePeers(lambda: None, lambda s: frozenset({"10.0.1.5"}), clock)
    names = iter(["edge_nginx"])

    def edge_service() -> str | None:
        try:
            return next(names)
        except StopIteration:
            raise ConnectionError("the Docker API proxy is restarting") from None

    peers = EdgePeers(edge_service, lambda s: frozenset({"10.0.1.5"}), clock)
    assert "10.0.1.5" in peers
    clock.now += 3600
    assert "10.0.1.5" in peers


def test_direct_networks() -> None:
    assert in_networks("127.0.0.1", ("127.0.0.0/8", "::1/128"))
    assert in_networks("::1", ("127.0.0.0/8", "::1/128"))
    assert not in_networks("10.0.1.9", ("127.0.0.0/8",))
    assert not in_networks("engine", ("127.0.0.0/8",))
