# syntax=docker/dockerfile:1
# One image for both roles; the command picks the role:
#   API (default):  taskcast-api ...     (uvicorn's options; WEB_CONCURRENCY processes)
#   worker:         taskcast-worker      (also set TASKCAST_ROLE=worker, see HEALTHCHECK)
# It holds the service's runtime dependencies only, exactly as pinned in requirements.txt.
ARG PYTHON_VERSION=3.12

FROM python:${PYTHON_VERSION}-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /src

# Dependencies get their own layer, rebuilt only when the lockfile changes: the runtime set
# pinned with hashes (./dev lock writes it), then the project itself with --no-deps.
COPY requirements.txt ./
RUN pip install --require-hashes -r requirements.txt

# README.md* so that a missing readme does not break the build (it only feeds metadata).
COPY pyproject.toml README.md* ./
COPY taskstore ./taskstore
COPY server ./server
COPY worker ./worker
COPY taskcast_client ./taskcast_client
RUN pip install --no-deps .


FROM python:${PYTHON_VERSION}-slim AS runtime

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    TASKCAST_ROLE=api

RUN groupadd --system --gid 10001 taskcast \
    && useradd --system --uid 10001 --gid taskcast --no-create-home --no-log-init \
       --shell /usr/sbin/nologin taskcast

COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# The app serves the demo page from ./static relative to the working directory.
COPY static ./static

USER 10001:10001
EXPOSE 8000

# slim has no curl. The worker serves no HTTP: with TASKCAST_ROLE=worker the check passes
# and the worker's liveness is its process (restart policy) and its consumer in the group.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; os.environ.get('TASKCAST_ROLE', 'api') == 'worker' or u.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]

# WEB_CONCURRENCY (read by uvicorn) sets the number of API processes; 1 when unset.
CMD ["taskcast-api", "--host", "0.0.0.0", "--port", "8000", "--timeout-graceful-shutdown", "5"]
