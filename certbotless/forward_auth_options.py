"""What a route's forward auth asks its auth server and passes on, besides the address
(Traefik's forwardAuth options), grouped as one field of a route. Imports nothing of
certbotless."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ForwardAuthOptions:
    response_headers: tuple[str, ...] = ()  # copied from the auth server's 2xx onto the request
    request_headers: tuple[str, ...] = ()  # only these of the client's go to it (empty: all)
    keeps_method: bool = False  # asked with the request's method, not GET
    keeps_location: bool = False  # a refusal's relative Location passed as it is
    signin_url: str = ""  # a 401 answered by a redirect to it (authSigninURL)
    # The longest auth answer body read (maxResponseBodySize); a longer one is a 401. None: any.
    max_answer_body: int | None = None
    # trustForwardHeader as given (None: not given, Traefik's older way of writing the
    # headers), which decides which of its entry point's headers reach the auth server.
    trusts_forward_headers: bool | None = None
    # forwardBody: the request's body goes to the auth server too.
    forwards_body: bool = False
    # maxBodySize, with forwards_body: the longest request body sent (a longer one is a 401);
    # None: any.
    max_request_body: int | None = None


ASKED_AS_TRAEFIK_DOES = ForwardAuthOptions()
