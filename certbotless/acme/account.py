"""The ACME account: find the one this key already has, or register it (with EAB if required).

Both sign with the bare key (no account URL), so they run on a client of their own
(`account_client`), never on the network that order workers share.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from acme import client, jws, messages
from josepy.jwk import JWK

from certbotless.acme import protocol
from certbotless.acme.errors import (
    ACCOUNT_DOES_NOT_EXIST,
    BadRequest,
    CaProblem,
    UnexpectedAnswer,
)
from certbotless.acme.network import AcmeNetwork, signing_algorithm

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExternalAccountBinding:
    """EAB credentials from the CA's dashboard (RFC 8555 §7.3.4). The HMAC key is base64url."""

    kid: str
    hmac_key: str = field(repr=False)


def account_client(directory: messages.Directory, shared: AcmeNetwork) -> client.ClientV2:
    """A client for account lookup and registration: same key, CA bundle and retry policy as
    `shared`, but its own network, so that no worker signs with the bare key meanwhile."""
    return client.ClientV2(directory, shared.sibling())


def find_or_register(
    acme: client.ClientV2, email: str | None, eab: ExternalAccountBinding | None
) -> messages.RegistrationResource:
    """Look the key's account up first (`onlyReturnExisting`) so restarts never make duplicates.
    `acme` is a client from `account_client`."""
    account = find_existing(acme)
    if account is None:
        return _register(acme, email, eab)
    log.info("using the existing ACME account %s", account.uri)
    return account


def find_existing(acme: client.ClientV2) -> messages.RegistrationResource | None:
    """The account of this key at this CA, if it has one; never creates one. `acme` is a client
    from `account_client`."""
    try:
        response = protocol.post(
            acme, acme.directory["newAccount"], messages.NewRegistration(only_return_existing=True)
        )
    except CaProblem as problem:
        if problem.typ != ACCOUNT_DOES_NOT_EXIST:
            raise
        return None
    location = response.headers.get("Location")
    if not location:
        raise UnexpectedAnswer("the CA found the account but sent no Location header (its URL)")
    return messages.RegistrationResource(
        body=messages.Registration.from_json(response.json()), uri=location
    )


def _register(
    acme: client.ClientV2, email: str | None, eab: ExternalAccountBinding | None
) -> messages.RegistrationResource:
    binding = None
    key = acme.net.key
    assert key is not None, "AcmeNetwork always has the account key"
    if eab is not None:
        binding = messages.ExternalAccountBinding.from_data(
            account_public_key=key.public_key(),
            kid=eab.kid,
            hmac_key=eab.hmac_key,
            directory=acme.directory,
        )
    elif acme.external_account_required():
        raise BadRequest(
            "this CA requires External Account Binding: set CERTBOTLESS_EAB_KID and "
            "CERTBOTLESS_EAB_HMAC_KEY to the values from the CA's account page"
        )
    registration = messages.NewRegistration.from_data(
        email=email, terms_of_service_agreed=True, external_account_binding=binding
    )
    account = acme.new_account(registration)
    log.info("registered a new ACME account %s", account.uri)
    return account


def change_key(acme: client.ClientV2, account_url: str, old_key: JWK, new_key: JWK) -> None:
    """RFC 8555 §7.3.5 keyChange: the inner JWS, signed by `new_key` (with its `jwk` and the
    URL, no nonce), names the account and the old key; `acme` (the account's client) signs the
    outer one with the old key and the account's URL."""
    try:
        url = acme.directory["keyChange"]
    except KeyError:
        raise BadRequest("this CA offers no key rollover (no keyChange in its directory)") from None
    payload = {"account": account_url, "oldKey": old_key.public_key().to_json()}
    inner = jws.JWS.sign(
        json.dumps(payload).encode(),
        key=new_key,
        alg=signing_algorithm(new_key),
        nonce=None,
        url=url,
    )
    protocol.post(acme, url, inner)
    log.info("the ACME account %s now signs with the new key", account_url)
