"""celery-harder's HTTP API."""
