# The request worker: `worker run` by default; any other `worker` subcommand by
# passing it as the command, e.g.
#
#   docker build -t request-worker .
#   docker run --rm request-worker topics check
#   docker run --rm -p 6066:6066 -e KAFKA_BOOTSTRAP_SERVERS=... request-worker
#
# Dependencies are installed within the versions pinned by constraints.txt.

FROM python:3.11.13-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# An unprivileged user, and the data directory (Faust state, embedded chDB) it owns.
# A named volume mounted on /data takes this ownership when it is first created.
RUN groupadd --system --gid 10001 worker \
    && useradd --system --uid 10001 --gid worker --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin worker \
    && mkdir -p /data \
    && chown worker:worker /data

WORKDIR /app

COPY constraints.txt pyproject.toml README.md ./
COPY worker/ worker/
COPY topics/ topics/
COPY schemas/ schemas/

RUN pip install --no-cache-dir --root-user-action=ignore -c constraints.txt . \
    && worker --version

# Inside a container the web server must listen on every interface to be reachable
# (published port, healthcheck); files go to the /data volume.
ENV WORKER_WEB_HOST=0.0.0.0 \
    WORKER_WEB_PORT=6066 \
    WORKER_DATA_DIR=/data \
    WORKER_TOPICS_FILE=/app/topics/topics.toml \
    CLICKHOUSE_PATH=/data/chdb

USER worker:worker

# The Faust web server (WORKER_WEB_PORT).
EXPOSE 6066

# `worker run` stops gracefully on SIGTERM (the default stop signal).
ENTRYPOINT ["worker"]
CMD ["run"]
