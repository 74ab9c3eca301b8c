"""The nginx edge: rendering its configuration, one module per concern (`render` lays out the
files; `servers`, `locations`, `conditions`, `guards` and `shaping` write the blocks; `mounts`
says where each file goes; `validation` runs `nginx -t`; `snippets` serves an operator's own
nginx.conf), the deployer that mounts the configs and secrets, checks them and rolls the nginx
service (`deployer`, `rollout`), and the watch of which certificate each edge task serves (`watch`).

It may import the foundations (`model`, `settings`, `seams`, `redaction`, `proxy_protocol`,
`request_conditions`),
the labels package's value constants, `acme.keys` and `swarm.*`; never `passes`, `daemon`,
`ops`, `web`, `app` or `cli`.
"""
