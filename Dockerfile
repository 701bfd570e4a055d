# rrmbed: one image for every process (controller, channel-server, node-N).
#
# With a registry (users):
#   docker build -t rrmbed:local .
#     base python:3.11-slim, dependencies from PyPI, torch CPU from download.pytorch.org
# Offline (CI; what scripts/build-images.sh does):
#   docker build --build-arg BASE_IMAGE=rrmbed-base:bookworm -t rrmbed:local .
#     with ./wheelhouse/*.whl in the build context: `pip install --no-index --find-links`
#
# Any image with python3.11 + venv works as BASE_IMAGE (Debian bookworm's python3 is 3.11).
# Layers are ordered so that editing the sources rebuilds only a small wheel layer:
# the dependency venv depends on the dependency list and the wheelhouse alone.
ARG BASE_IMAGE=python:3.11-slim

# ------------------------------------------------------------------ reqs: what to install
# The dependency list alone (not all of pyproject.toml) keys the cache of the deps stage.
FROM ${BASE_IMAGE} AS reqs
LABEL org.rrmbed.stage=reqs
# `wheelhouse*` matches nothing when there is no wheelhouse (then only pyproject.toml is
# copied); a directory's contents land in /wheelhouse/ next to pyproject.toml.
COPY pyproject.toml wheelhouse* /wheelhouse/
RUN python3 -c "import tomllib; p = tomllib.load(open('/wheelhouse/pyproject.toml', 'rb')); \
print('\n'.join(p['project']['dependencies']))" > /wheelhouse/requirements.txt \
    && rm /wheelhouse/pyproject.toml

# ------------------------------------------------------------------ deps: venv + dependencies
FROM ${BASE_IMAGE} AS deps
LABEL org.rrmbed.stage=deps
ARG PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/venv
COPY --from=reqs /wheelhouse /wheelhouse
RUN set -eu; \
    if ls /wheelhouse/*.whl >/dev/null 2>&1; then \
        echo "installing from the wheelhouse (offline)"; \
        /opt/venv/bin/pip install --no-index --find-links /wheelhouse \
            -r /wheelhouse/requirements.txt; \
    else \
        echo "installing from the index (torch from $PIP_EXTRA_INDEX_URL)"; \
        /opt/venv/bin/pip install --extra-index-url "$PIP_EXTRA_INDEX_URL" \
            -r /wheelhouse/requirements.txt; \
    fi

# ------------------------------------------------------------------ wheel: rrmbed itself
FROM deps AS wheel
# The packages of pyproject.toml's [tool.setuptools] packages (not the wheelhouse again).
COPY pyproject.toml README.md* /src/
COPY controller /src/controller
COPY node /src/node
COPY channel_server /src/channel_server
COPY protocols /src/protocols
RUN set -eu; \
    if ls /wheelhouse/*.whl >/dev/null 2>&1; then \
        /opt/venv/bin/pip wheel --no-index --find-links /wheelhouse --no-deps -w /dist /src; \
    else \
        /opt/venv/bin/pip wheel --no-deps -w /dist /src; \
    fi

# ------------------------------------------------------------------ runtime
FROM ${BASE_IMAGE}
LABEL org.rrmbed.stage=runtime
COPY --from=deps /opt/venv /opt/venv
# Entrypoint: prepend `rrmbed` when there is no argument, the first is an option, or it is
# not a command on PATH (`controller`, `node`, ...).
RUN set -eu; \
    printf '%s\n' '#!/bin/sh' \
        'if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ] || ! command -v "$1" >/dev/null 2>&1; then' \
        '    set -- rrmbed "$@"' \
        'fi' \
        'exec "$@"' > /usr/local/bin/rrmbed-entrypoint; \
    chmod 0755 /usr/local/bin/rrmbed-entrypoint; \
    groupadd --system --gid 10001 rrmbed; \
    useradd --system --uid 10001 --gid 10001 --home-dir /runs --shell /usr/sbin/nologin rrmbed; \
    mkdir -p /runs; \
    chown rrmbed:rrmbed /runs
COPY --from=wheel /dist /tmp/dist
RUN /opt/venv/bin/pip install --no-cache-dir --no-index --no-deps /tmp/dist/*.whl \
    && rm -rf /tmp/dist \
    && /opt/venv/bin/python -c "import controller, node, channel_server, protocols"
# The repository's scenarios, baked in (compose mounts the chosen one as well).
COPY scenarios /scenarios
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 LANG=C.UTF-8 MPLBACKEND=Agg \
    MPLCONFIGDIR=/tmp/matplotlib PIP_DISABLE_PIP_VERSION_CHECK=1
USER rrmbed
WORKDIR /runs
VOLUME ["/runs"]
# Ports by convention: controller 5550, channel-server 5551, node 5552.
EXPOSE 5550 5551 5552
# `docker run IMAGE --help`, `docker run IMAGE node --id 0 ...` and
# `docker run IMAGE rrmbed node --id 0 ...` all run rrmbed.
ENTRYPOINT ["rrmbed-entrypoint"]
CMD ["rrmbed", "--help"]
