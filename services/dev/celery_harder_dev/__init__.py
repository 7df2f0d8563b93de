"""Development tooling of celery-harder; installed by `make venv`, never by an image."""
