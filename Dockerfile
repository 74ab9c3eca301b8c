# The certbotless sidecar. Tests build it on a locally imported base:
#   docker build --build-arg BASE_IMAGE=certbotless-test-base --build-arg PIP_FIND_LINKS=/src/.build/wheels .
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}

# nginx is here only to run `nginx -t` on every rendered config before it is rolled.
RUN command -v nginx >/dev/null \
 || (apt-get update && apt-get install -y --no-install-recommends nginx-light \
     && rm -rf /var/lib/apt/lists/*)

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
EXPOSE 8402
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s \
  CMD python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8402/healthz', timeout=4)"
ENTRYPOINT ["certbotless"]
CMD ["run"]
