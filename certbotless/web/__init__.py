"""The status page: a server-rendered overview of every certificate, its JSON API and, when
enabled, a few actions; on its own listener, never served open.

May import: everything below it (foundations, `labels`, `acme`, `swarm`, `edge`, `passes`) and
`daemon`/`ops` beside it; never `app` or `cli`."""
