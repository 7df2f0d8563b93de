"""celery-harder core: settings, Celery configuration, task catalog and workflow engine."""

__version__ = "0.1.0"
