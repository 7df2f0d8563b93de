"""The Celery worker package, laid out as in the seed."""
