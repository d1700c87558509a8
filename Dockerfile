# Loupe's image, for users who run containers (deploy/compose.yaml). It cannot be built or tested
# on the project's machines (no image registry); the tested topology is deploy/local-production,
# whose processes these are: every container runs `manage.py serve ROLE` (config/processes.py),
# with the same settings (deploy/loupe.env.example). tests/deploy/test_deployment_files.py keeps
# the roles and variables of this file, the compose file and the systemd units in step.
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LOUPE_DATA_DIR=/srv/loupe \
    LOUPE_MEDIA_ROOT=/srv/loupe/media

RUN useradd --system --create-home --home-dir /opt/loupe loupe \
    && mkdir -p /srv/loupe/media && chown -R loupe:loupe /srv/loupe
WORKDIR /opt/loupe

COPY requirements.txt .
RUN python -m venv .venv && .venv/bin/pip install --no-cache-dir -r requirements.txt

COPY --chown=loupe:loupe . .

USER loupe
EXPOSE 8000
ENTRYPOINT [".venv/bin/python", "manage.py", "serve"]
CMD ["web", "--host", "0.0.0.0", "--port", "8000"]
