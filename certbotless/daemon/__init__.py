"""The daemon around the passes: `scheduler.py` decides when a pass runs (cron, Docker events,
certificates coming due, retries) and whether it may roll; `alerts.py` tells people (webhook,
e-mail) when renewal needs them; `metrics.py` the Prometheus metrics, ACME requests among them
through the `acme.network.AcmeRequestObserver` the app passes in; `pass_history.py` the last
passes' reports, in memory.

May import: everything below it (foundations, `labels`, `acme`, `swarm`, `edge`, `passes`) and
`ops`/`web` beside it; never `app` or `cli`."""
