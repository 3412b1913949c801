# lmdeck's container image: `docker build -t lmdeck .` (see docs/deployment.md).
#
#   --build-arg EXTRAS=postgres        default: the gateway plus the PostgreSQL driver
#   --build-arg EXTRAS=postgres,local  adds the in-process engine (torch and friends: a much larger image);
#                                      the lock pins torch's CPU build, so also pass the PyTorch CPU wheel index
#                                      as --build-arg PIP_EXTRA_INDEX_URL=<index URL>
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ARG EXTRAS=postgres
ARG PIP_EXTRA_INDEX_URL=
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_EXTRA_INDEX_URL=${PIP_EXTRA_INDEX_URL}
RUN python -m venv /opt/lmdeck
WORKDIR /src
COPY pyproject.toml requirements.lock README.md ./
COPY src ./src
# requirements.lock pins every version CI passed with; as constraints it installs only what EXTRAS needs.
RUN /opt/lmdeck/bin/pip install --constraint requirements.lock ".${EXTRAS:+[${EXTRAS}]}"

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/lmdeck/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LMDECK_DATA_DIR=/data \
    LMDECK_PORT=4000
RUN groupadd --system --gid 10001 lmdeck \
    && useradd --system --uid 10001 --gid lmdeck --home-dir /data --no-create-home lmdeck \
    && mkdir -p /data && chown lmdeck:lmdeck /data && chmod 0700 /data
COPY --from=builder /opt/lmdeck /opt/lmdeck
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 4000
# The slim image has no curl: Python asks /health/ready (200 once the store is open and models are loaded).
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('LMDECK_PORT', '4000') + '/health/ready', timeout=4)"]
ENTRYPOINT ["lmdeck", "serve", "--host", "0.0.0.0"]
