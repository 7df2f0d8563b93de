"""The TaskWorkflow operator: `kopf run -m celery_harder_operator.handlers`."""
