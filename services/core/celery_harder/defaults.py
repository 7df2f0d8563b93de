"""Defaults that stdlib-only code reads without importing the settings (the worker's probe)."""

# The heartbeat file the worker touches and its probes read (CELERY_HARDER_HEARTBEAT_FILE).
HEARTBEAT_FILE = "/tmp/celery-harder/worker.heartbeat"
HEARTBEAT_FILE_ENV = "CELERY_HARDER_HEARTBEAT_FILE"
