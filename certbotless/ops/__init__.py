"""Operators' tools beside the pass: `doctor.py` (what would stop a pass, checked one by one),
`views.py` (the listings of `certbotless list` and the status page), `traefik_import.py`
(Traefik's acme.json → stored versions), `account_key.py` (the ACME account key as a Swarm
secret), `account_rollover.py` (`account rollover`: its key replaced, keeping the account).

May import: everything below it (foundations, `labels`, `acme`, `swarm`, `edge`, `passes`) and
`daemon`/`web` beside it; never `app` or `cli`."""
