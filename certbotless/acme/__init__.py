"""The ACME engine: account, orders, retries and back-off, ARI; the challenge solvers (HTTP-01
with its token store, responder and edge self-check; DNS-01 with its providers).

May import: the foundations only (`model`, `settings`, `seams`, `proxy_protocol`); `errors.py`
is itself a foundation (the failure vocabulary every stage reports in) and `ari.py` belongs to
planning. Every private call into the `acme` library is in `protocol.py`."""
