FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY enterprise_portal enterprise_portal
COPY accounts accounts
COPY campaigns campaigns
COPY contacts contacts
COPY devices devices
COPY api api
RUN pip install --no-cache-dir '.[sip]'
COPY . .
# A throwaway key: settings refuse a short or known one, and this build signs nothing.
RUN SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(50))')" DATABASE_URL=postgresql://x@localhost/x REDIS_URL=redis://localhost/0 \
    STATIC_MANIFEST=1 python manage.py collectstatic --noinput
EXPOSE 8000
CMD ["gunicorn", "enterprise_portal.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3"]
