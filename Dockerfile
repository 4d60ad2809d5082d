# One image for web, worker and beat (see docker-compose.yml).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    KAY_VAR_DIR=/app/var

WORKDIR /app
RUN useradd --create-home --uid 1000 kay

COPY requirements.lock .
RUN pip install -r requirements.lock

COPY . .
# collectstatic needs settings to load; these throw-away values exist only in this layer.
RUN SECRET_KEY=build-only DEBUG=false APP_URL=https://build.invalid SERVER_SECRET_KEY=build \
    ENCRYPTION_KEYS=$(python -m core.envfile --new-key) EMAIL_URL=consolemail:// \
    python manage.py collectstatic --no-input \
    && mkdir -p /app/var && chown -R kay /app/var
# A container is a deployment: production unless DEPLOY_ENV names another (set after the
# build step, whose throw-away values would not pass production's start-up checks).
ENV DEPLOY_ENV=production

USER kay
EXPOSE 8000
# ASGI (uvicorn workers): /ask's waits are async and hold no worker (docs/assistant.md).
CMD ["gunicorn", "-c", "config/gunicorn.py", "-k", "uvicorn.workers.UvicornWorker", "config.asgi:application"]
