"""Every call into the acme library's private API, in one place to check when acme is upgraded.

acme's public `ClientV2` only sends the messages it knows, in the shapes it knows. Its public
API lacks a way to:
- post a message of our own: newOrder with RFC 9773's `replaces`, and newAccount with
  `onlyReturnExisting` (its `new_account` treats "found" as an error);
- fetch a resource by URL with POST-as-GET: an order, an authorization, a certificate;
- list every Link header of one relation: the alternate chains (requests keeps one per rel).

The other dependency on acme internals is `network.AcmeNetwork`, which overrides
`ClientNetwork`'s nonce and response hooks (`_get_nonce`, `_send_request`, `_add_nonce`,
`_check_response`, the `_nonces` pool) and wraps `_post_once` in its retries: it has to, as a
subclass.
"""

from __future__ import annotations

from typing import Any

import requests
from acme import client, jws, messages
from josepy.interfaces import JSONDeSerializable


def post(acme: client.ClientV2, url: str, message: JSONDeSerializable) -> requests.Response:
    """A signed POST of `message` (newNonce handled as acme does for its own messages)."""
    return acme._post(url, message)


def post_as_get(acme: client.ClientV2, url: str) -> requests.Response:
    return acme._post_as_get(url)


def authorization_at(acme: client.ClientV2, url: str) -> messages.AuthorizationResource:
    return acme._authzr_from_response(acme._post_as_get(url), uri=url)


def links(acme: client.ClientV2, response: requests.Response, relation: str) -> list[str]:
    """Every Link header of `response` with rel=`relation`."""
    return acme._get_links(response, relation)


def decoded_nonce(header: str) -> Any:
    """A Replay-Nonce header as acme's nonce pool holds it: base64url-decoded bytes, though acme
    annotates the pool as set[str]."""
    return jws.Header._fields["nonce"].decode(header)
