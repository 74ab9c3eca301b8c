"""The HTTP-01 solver through the edge, and how the engine picks a solver's challenge type."""

import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from acme import challenges, messages

from certbotless.acme.authorizations import ChallengeAnswers
from certbotless.acme.backoff import IdentifierBackoff
from certbotless.acme.challenges import TokenStore
from certbotless.acme.errors import BadRequest, UnexpectedAnswer
from certbotless.acme.http01 import EdgeHttp01Solver, EdgeSelfCheck
from certbotless.acme.keys import load_account_key
from certbotless.acme.session import CaSession
from certbotless.model import CertSpec, Challenge, ChallengeMode, ChallengeType
from certbotless.seams import Solver

TOKEN = "Tok_solver_0123456789abcdefghij"
CHALLENGE = Challenge("a.example.test", TOKEN, TOKEN + ".thumbprint")


class RecordingSelfCheck(EdgeSelfCheck):
    def __init__(self) -> None:
        super().__init__("tasks.edge")
        self.calls: list[tuple[object, ...]] = []

    def wait_until_served(
        self,
        domain: str,
        token: str,
        key_authorization: str,
        deadline: float | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.calls.append((domain, token, key_authorization, deadline, stop))


def test_presents_the_key_authorization_under_its_token_until_clean_up(tmp_path: Path) -> None:
    tokens = TokenStore(tmp_path)
    solver: Solver = EdgeHttp01Solver(tokens)
    solver.present(CHALLENGE)
    assert tokens.get(TOKEN) == CHALLENGE.key_authorization
    solver.clean_up(CHALLENGE)
    assert tokens.get(TOKEN) is None


def test_a_malformed_token_is_an_unexpected_answer_naming_the_domain(tmp_path: Path) -> None:
    solver = EdgeHttp01Solver(TokenStore(tmp_path))
    with pytest.raises(UnexpectedAnswer, match=r"^a\.example\.test: .*unusable HTTP-01 token"):
        solver.present(Challenge("a.example.test", "../escape", "x"))
    assert not any(tmp_path.iterdir())


def test_without_a_self_check_a_presented_token_is_visible_at_once(tmp_path: Path) -> None:
    said: list[str] = []
    solver = EdgeHttp01Solver(TokenStore(tmp_path), progress=said.append)
    solver.wait_until_visible(CHALLENGE, time.monotonic() + 60, threading.Event())
    assert said == []


def test_the_self_check_gets_the_orders_deadline_and_stop(tmp_path: Path) -> None:
    said: list[str] = []
    check = RecordingSelfCheck()
    solver = EdgeHttp01Solver(TokenStore(tmp_path), check, progress=said.append)
    deadline, stop = time.monotonic() + 60, threading.Event()
    solver.wait_until_visible(CHALLENGE, deadline, stop)
    assert check.calls == [(CHALLENGE.domain, TOKEN, CHALLENGE.key_authorization, deadline, stop)]
    assert said == ["a.example.test: checking the edge serves the challenge"]


class Dns01Solver:
    def __init__(self) -> None:
        self.presented: list[Challenge] = []

    def present(self, challenge: Challenge) -> None:
        self.presented.append(challenge)

    def wait_until_visible(
        self, challenge: Challenge, deadline: float, stop: threading.Event
    ) -> None:
        pass

    def clean_up(self, challenge: Challenge) -> None:
        pass


def http01_only_order() -> messages.OrderResource:
    offered = messages.ChallengeBody(
        chall=challenges.HTTP01(token=b"t" * 32), uri="https://ca.example.test/chall/1"
    )
    authorization = messages.AuthorizationResource(
        uri="https://ca.example.test/authz/1",
        body=messages.Authorization(
            identifier=messages.Identifier(typ=messages.IDENTIFIER_FQDN, value="b.example.test"),
            challenges=[offered],
            status=messages.STATUS_PENDING,
        ),
    )
    return messages.OrderResource(
        uri="https://ca.example.test/order/1", authorizations=[authorization]
    )


def test_it_refuses_a_dns01_challenge(tmp_path: Path) -> None:
    tokens = TokenStore(tmp_path)
    dns_challenge = replace(CHALLENGE, challenge_type=ChallengeType.DNS01)
    with pytest.raises(BadRequest, match=r"^a\.example\.test: the HTTP-01 solver got a dns-01$"):
        EdgeHttp01Solver(tokens).present(dns_challenge)
    assert tokens.get(TOKEN) is None


def test_a_ca_without_the_specs_challenge_type_is_a_clear_bad_request() -> None:
    session = CaSession("https://ca.example.test/directory", load_account_key(None))
    answers = ChallengeAnswers(session, IdentifierBackoff(), threading.Event())
    solver = Dns01Solver()
    with (
        pytest.raises(BadRequest, match=r"^b\.example\.test: the CA offers no dns-01 challenge"),
        answers.answered(
            http01_only_order(),
            CertSpec("b", ("b.example.test",), challenge=ChallengeMode.DNS01),
            solver,
            print,
            time.monotonic() + 60,
        ),
    ):
        pass
    assert solver.presented == []
