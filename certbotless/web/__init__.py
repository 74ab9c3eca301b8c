"""The status page: a server-rendered overview of every certificate, its JSON API and, when
enabled, a few actions; on its own listener, never served open."""
