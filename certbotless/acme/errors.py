"""Every way an ACME operation can fail, as a typed error that reads well in a log or an alert."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime

import requests
from acme import errors, messages
from josepy.errors import DeserializationError

# Problem types (RFC 8555 §6.7, RFC 9773) that the engine treats specially.
BAD_NONCE = "urn:ietf:params:acme:error:badNonce"
RATE_LIMITED = "urn:ietf:params:acme:error:rateLimited"
ACCOUNT_DOES_NOT_EXIST = "urn:ietf:params:acme:error:accountDoesNotExist"
ALREADY_REPLACED = "urn:ietf:params:acme:error:alreadyReplaced"
EXTERNAL_ACCOUNT_REQUIRED = "urn:ietf:params:acme:error:externalAccountRequired"
ORDER_NOT_READY = "urn:ietf:params:acme:error:orderNotReady"
REJECTED_IDENTIFIER = "urn:ietf:params:acme:error:rejectedIdentifier"
UNAUTHORIZED = "urn:ietf:params:acme:error:unauthorized"

_PLAIN_WORDS = {
    "urn:ietf:params:acme:error:connection": "the CA could not connect to the challenge URL",
    UNAUTHORIZED: "the challenge answer was wrong or missing",
    "urn:ietf:params:acme:error:dns": "the CA could not resolve the domain",
    "urn:ietf:params:acme:error:rejectedIdentifier": "the CA will not issue for this name",
    "urn:ietf:params:acme:error:caa": "a CAA record forbids this CA",
    RATE_LIMITED: "the CA's rate limit was hit",
    EXTERNAL_ACCOUNT_REQUIRED: "the CA requires External Account Binding "
    "(set CERTBOTLESS_EAB_KID and CERTBOTLESS_EAB_HMAC_KEY)",
}

# A revocation has no challenge: the same problem types mean something else there.
REVOCATION_WORDS = {
    **_PLAIN_WORDS,
    UNAUTHORIZED: "the CA refused the revocation: this account did not order the certificate "
    "and holds no valid authorization for all its names (revoke it with the account that "
    "ordered it, or with the certificate's own key)",
    "urn:ietf:params:acme:error:alreadyRevoked": "the certificate is revoked already",
}


def describe_problem(
    problem: messages.Error | None, plain_words: dict[str, str] = _PLAIN_WORDS
) -> str:
    """A CA problem document (type, detail, subproblems) as one sentence for an operator, the
    type in `plain_words` (those of an order, unless told)."""
    if problem is None:
        return "no details from the CA"
    kind = str(problem.typ)
    text = plain_words.get(kind, kind.rsplit(":", 1)[-1])
    if problem.detail:
        text += f": {problem.detail}"
    text += f" [{kind}]"
    for sub in getattr(problem, "subproblems", None) or []:
        name = sub.identifier.value if sub.identifier else "?"
        text += f"; {name}: {sub.detail}"
    return text


class AcmeError(Exception):
    """An ACME operation failed. `str()` is the message an operator reads."""


class CaProblem(AcmeError):
    """The CA answered with a problem document."""

    def __init__(
        self, context: str, problem: messages.Error, plain_words: dict[str, str] = _PLAIN_WORDS
    ) -> None:
        super().__init__(f"{context}: {describe_problem(problem, plain_words)}")
        self.problem = problem

    @property
    def typ(self) -> str:
        return str(self.problem.typ)


class RateLimited(CaProblem):
    """The CA said to slow down; no request for these names before `retry_at`."""

    def __init__(self, context: str, problem: messages.Error, retry_at: datetime) -> None:
        super().__init__(context, problem)
        self.retry_at = retry_at
        self.args = (f"{self.args[0]}; next attempt after {retry_at:%Y-%m-%d %H:%M:%S} UTC",)


class RevocationRefused(CaProblem):
    """The CA would not revoke the certificate."""

    def __init__(self, problem: messages.Error) -> None:
        super().__init__("revocation refused", problem, REVOCATION_WORDS)


class ValidationFailed(AcmeError):
    """The CA tried the challenge and it failed."""


class CaUnreachable(AcmeError):
    """The CA did not answer (connection errors or 5xx) after every retry."""


class OrderTimedOut(AcmeError):
    """The order did not finish before its deadline."""


class BackingOff(AcmeError):
    """Recent failures for a name: no order until `retry_at`, to spare the CA's limits."""

    def __init__(self, message: str, retry_at: datetime, rate_limited: bool = False) -> None:
        super().__init__(message)
        self.retry_at = retry_at
        self.rate_limited = rate_limited  # after the CA's rateLimited, not failed validations


class BadRequest(AcmeError):
    """The request cannot succeed as asked (too many names, unknown profile…); fix the input."""


class UnexpectedAnswer(AcmeError):
    """The CA answered something this client cannot use (unreadable JSON, a missing header, a
    malformed token, a reply about another resource)."""


class Abandoned(AcmeError):
    """certbotless is stopping, so the order was not started or was left before finalization."""

    def __init__(self) -> None:
        super().__init__("abandoned: certbotless is stopping; the next start orders it again")


# What acme, josepy and requests raise for answers they cannot use.
UNUSABLE_ANSWER = (errors.Error, DeserializationError, requests.JSONDecodeError)


@contextlib.contextmanager
def unusable_answers_as_acme_errors() -> Iterator[None]:
    """acme, josepy and requests have their own errors for answers they cannot use; callers of
    the engine handle AcmeError only."""
    try:
        yield
    except errors.UnexpectedUpdate as error:
        raise UnexpectedAnswer(f"the CA answered about something else: {error}") from error
    except UNUSABLE_ANSWER as error:
        raise UnexpectedAnswer(
            f"the CA's answer cannot be used ({type(error).__name__}: {error})"
        ) from error


class DnsUpdateRefused(Exception):
    """A DNS service refused an update and changed nothing (a DnsProvider raises it)."""
