# The certbotless sidecar. Tests build it on a locally imported base:
#   docker build --build-arg BASE_IMAGE=certbotless-test-base --build-arg PIP_FIND_LINKS=/src/.build/wheels .
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}

# nginx is here only to run `nginx -t` on every rendered config before it is rolled; njs (its
# JavaScript module) for the routes that need it (certbotless/edge/njs.py).
RUN command -v nginx >/dev/null \
 || (apt-get update && apt-get install -y --no-install-recommends nginx-light \
     libnginx-mod-http-js && rm -rf /var/lib/apt/lists/*)

# With PIP_FIND_LINKS set, install offline from prebuilt wheels (no registry in the test rig).
ARG PIP_FIND_LINKS=
COPY . /src
RUN python3 -m venv /opt/certbotless \
 && if [ -n "$PIP_FIND_LINKS" ]; then \
      /opt/certbotless/bin/pip install --no-cache-dir --no-index --find-links "$PIP_FIND_LINKS" certbotless; \
    else \
      /opt/certbotless/bin/pip install --no-cache-dir /src; \
    fi \
 && rm -rf /src

ENV PATH=/opt/certbotless/bin:$PATH \
    PYTHONUNBUFFERED=1
EXPOSE 8402 8404
# Swarm puts a task in DNS only once it is healthy, and nginx reaches the responder by that name:
# the first check comes one interval after start (Docker 20.10 has no start-interval), so keep
# it short, and cheap (bash, no Python). Unhealthy after a minute of failing.
HEALTHCHECK --interval=5s --timeout=5s --retries=12 \
  CMD ["bash", "-c", "listen=${CERTBOTLESS_RESPONDER_LISTEN:-0.0.0.0:8402}; exec 3<>/dev/tcp/127.0.0.1/${listen##*:} && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && read -r _ status _ <&3 && [ \"$status\" = 200 ]"]
# The release, as OCI annotations: `docker image inspect` tells which version a node runs.
# rig/images.py passes them (VERSION is pyproject.toml's); see docs/production.md, step 1.
ARG VERSION=unknown
ARG REVISION=
ARG SOURCE=
LABEL org.opencontainers.image.title="certbotless" \
      org.opencontainers.image.version="$VERSION" \
      org.opencontainers.image.revision="$REVISION" \
      org.opencontainers.image.source="$SOURCE"
ENTRYPOINT ["certbotless"]
CMD ["run"]
