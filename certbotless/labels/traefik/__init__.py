"""Traefik's dialect: its labels as stacks write them (v2/v3 routers, services and middlewares,
and v1's common frontend labels) → the routes, certificates and problems certbotless.* labels
would give, in `labels.py`; the router rule language in `rules.py`; the dynamic-configuration
files (`name@file` middlewares) in `dynamic.py`; the middlewares one module each in
`middlewares/`.

May import: the foundations (`model`, `settings`, `seams`) and `certbotless.labels` modules
only."""
