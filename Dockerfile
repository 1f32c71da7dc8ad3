# syntax=docker/dockerfile:1
# One image for every driftwarden component: `driftwarden <command>` (the Helm chart runs
# `injector run`, `detectors run`, `trigger run`, `topics create`, and the injected sidecar
# runs `collector run`). Targets:
#   runtime (default)  the services; no torch (the multivariate MMD test needs the trainer
#                      image or `pip install driftwarden[torch]`)
#   trainer            runtime + torch, for the retraining Jobs on GPU nodes
# The install step is the one `make install` runs in CI: uv into a virtualenv, from
# pyproject.toml, with the same extras syntax (tests/unit/test_dockerfile.py checks it).
#   docker build -t driftwarden .
#   docker build --target trainer -t driftwarden-trainer .
ARG PYTHON_IMAGE=python:3.12-slim-bookworm

# --- source: the project and an empty virtualenv with uv --------------------------------
FROM ${PYTHON_IMAGE} AS source
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_NO_CACHE=1
WORKDIR /src
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir "uv>=0.4,<1"
COPY pyproject.toml README.md ./
COPY driftwarden/ driftwarden/
COPY collector/ collector/
COPY detectors/ detectors/
COPY dashboards/ dashboards/
COPY alerts/ alerts/
COPY retrain_trigger/ retrain_trigger/

# --- build: driftwarden and its dependencies (no torch) ---------------------------------
FROM source AS build
ARG EXTRAS=""
RUN /opt/venv/bin/uv pip install --python /opt/venv/bin/python --compile-bytecode ".[${EXTRAS}]" \
    && /opt/venv/bin/pip uninstall --yes uv

# --- build-trainer: the same with torch -------------------------------------------------
FROM source AS build-trainer
RUN /opt/venv/bin/uv pip install --python /opt/venv/bin/python --compile-bytecode ".[torch]" \
    && /opt/venv/bin/pip uninstall --yes uv

# --- base: the runtime system, a non-root user ------------------------------------------
FROM ${PYTHON_IMAGE} AS base
RUN groupadd --system --gid 65532 driftwarden \
    && useradd --system --uid 65532 --gid 65532 --home-dir /home/driftwarden \
        --create-home --shell /usr/sbin/nologin driftwarden
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /home/driftwarden

# --- trainer: runtime + torch, for the retraining Jobs ----------------------------------
FROM base AS trainer
COPY --from=build-trainer /opt/venv /opt/venv
USER 65532:65532
ENTRYPOINT ["driftwarden"]
CMD ["--help"]

# --- runtime (default target) -----------------------------------------------------------
FROM base AS runtime
COPY --from=build /opt/venv /opt/venv
USER 65532:65532
ENTRYPOINT ["driftwarden"]
CMD ["--help"]
