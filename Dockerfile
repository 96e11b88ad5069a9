# One image for every Afinador service; the command picks the service.
#   docker build -t afinador .                       # gateway, optimizer, evolution
#   docker build -t afinador-ml --build-arg EXTRAS=ml .  # reward with CLIP/torch
FROM node:20-bookworm-slim AS web
WORKDIR /app/web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error

FROM python:3.11-slim-bookworm
ARG EXTRAS=""
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    DATA_DIR=/data ENVIRONMENT=production
WORKDIR /app
COPY requirements.txt requirements-ml.txt ./
RUN pip install -r requirements.txt \
 && if [ "$EXTRAS" = "ml" ]; then \
      pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
      && pip install -r requirements-ml.txt; \
    fi
COPY services ./services
COPY scripts ./scripts
COPY prompts ./prompts
COPY web ./web
COPY --from=web /app/web/node_modules ./web/node_modules
RUN useradd --create-home --uid 10001 afinador && mkdir -p /data && chown afinador /data
USER afinador
EXPOSE 8000
# SERVICE = gateway | optimizer | evolution | reward. Migrations run as a separate
# pre-start step in production (`python -m scripts.migrate $SERVICE`).
ENV SERVICE=gateway PORT=8000
CMD ["sh", "-c", "exec uvicorn services.${SERVICE}.main:app --host 0.0.0.0 --port ${PORT} --proxy-headers"]
