"""Services' labels → routes, certificate specs and label problems, the observe step's reading
of what stacks ask for. Two dialects read one service each: `native` (the certbotless.* labels)
and `traefik/` (Traefik's), with the checks both share in `values`; `status_route` adds the
status page's route; `settle` settles them together (the oldest claimant of a certificate name,
a host+path or a host's HSTS keeps it) and finds the labelled edge; `dialects` runs every
dialect the settings enable. `compose` and `lint` check stack files before deploy.

May import: the foundations only (`model`, `settings`, `setting_values`, `seams`,
`redaction`); never `passes`, `acme`, `swarm`, `edge`, `daemon`, `ops`, `web`, `app` or `cli`.
"""
