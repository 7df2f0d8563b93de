"""The worker's Celery app, as in the seed: `celery -A background.celery.celery_app worker`."""

from background import pop_and_record, unacked
from background.heartbeat import HeartbeatStep
from background.timer_purge import TimerPurgeStep
from celery_harder.celery_config import create_celery_app

unacked.install()
pop_and_record.install()
celery_app = create_celery_app(
    "celery_harder_worker",
    include=["background.task.test_tasks", "background.task.document_tasks"],
    worker=True,
)
celery_app.steps["consumer"].add(HeartbeatStep)
celery_app.steps["consumer"].add(TimerPurgeStep)
# Execute catalog tasks only; Celery's built-in tasks are refused like unknown names.
celery_app.conf.worker_consumer = "background.catalog_only:CatalogOnlyConsumer"
