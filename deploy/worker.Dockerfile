FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY domain domain
COPY activities activities
COPY workflows workflows
COPY workers workers
COPY starters starters
COPY emulator emulator
COPY observability observability
RUN pip install --no-cache-dir . && useradd --system --uid 10001 dr
USER dr
# SIGTERM lets running activities finish (DR_SHUTDOWN_GRACE seconds) before the worker exits.
STOPSIGNAL SIGTERM
ENTRYPOINT ["dr-worker"]
