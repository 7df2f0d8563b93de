"""Every Redis key prefix celery-harder writes beside Celery's own keys."""

ISSUED = "celery-harder:issued:"  # task ids the system handed out (for 404s)
DELIVERIES = "celery-harder:deliveries:"  # times a task id started (bounds redelivery)
STARTED = "celery-harder:started:"  # when a task id first started
REVOKED = "celery-harder:revoked:"  # task ids of cancelled workflows: never start them
WORKFLOW = "celery-harder:workflow:"  # the workflow record hash
WORKFLOW_DEADLINES = "celery-harder:workflow-deadlines"  # sorted set: id by deadline
