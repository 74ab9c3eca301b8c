"""A reconcile pass: `reconcile.py` sequences its steps, observe → plan → issue → deploy →
collect, and is the only module that does. `observe` (the swarm's services, stored versions and
status records, read through the seams; the labels package turns labels into routes),
`planning` and `budget` (what to order now, within the CA's rate limits), `issuing` (orders
through the `Issuer` seam, each certificate stored as it arrives), `deploying` (the edge's roll
through the `EdgeDeployer` seam), `garbage` (versions no service uses).

May import: the foundations, `labels`, `acme`, `swarm`, `edge`; `planning` and `budget` only the
foundations and `acme.ari`, since the acme package plans nothing. Never `daemon`, `ops`, `web`,
`app` or `cli`, which sit around the pass."""
