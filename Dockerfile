# One image for every Tunix Tune process: the api (default), the projector and the tuner.
#
#   docker build -t tunix-tune .
#   docker run -p 8000:8000 -e KAFKA_BOOTSTRAP_SERVERS=... -e DATABASE_URL=... tunix-tune
#   docker run ... tunix-tune python -m consumers.projector   (or consumers.tuner)
#
# compose.yaml runs the whole stack (Kafka, PostgreSQL, api, projector, tuner) with this image.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TUNIX_API_HOST=0.0.0.0 \
    TUNIX_API_PORT=8000

# Processes run from /app: adapters.migrations finds alembic.ini and migrations/ next to the
# package it was imported from, and `python -m` imports the packages from the working
# directory first, so /app must hold the source as well as the migrations. Only the folders
# the image needs are copied (the working tree also holds .venv/ and .state/): a new
# top-level package needs its own COPY line here.
WORKDIR /app
COPY pyproject.toml README.md ./
COPY app ./app
COPY consumers ./consumers
COPY schemas ./schemas
COPY producers ./producers
COPY training ./training
COPY adapters ./adapters
COPY service ./service
COPY provisioning ./provisioning
RUN pip install . \
    && rm -rf build ./*.egg-info
COPY alembic.ini ./
COPY migrations ./migrations
COPY datasets ./datasets

RUN useradd --system --no-create-home --uid 10001 tunix
USER tunix

EXPOSE 8000
CMD ["python", "-m", "app.main"]
