"""The swarm as the database: `api.py` is the Docker API adapter (every Docker call certbotless
makes, and nothing else, which `haproxy/docker-api-proxy.cfg` allows), `store.py` the
certificate versions (chains in configs, keys in secrets, facts in labels), `status.py` the
status records, the order history and the DNS-01 ledger on `cbl-status`, `lease.py` the pass
lease (`cbl-pass-lease`) over `locks.py`'s file lock for the container.

May import: the foundations and `acme` (the failure types a status record reports). Never
`edge`, `passes`, `daemon`, `ops`, `web`, `app` or `cli`."""
