"""The workflow engine: one spec language compiled to Celery canvas, tracked per node."""
