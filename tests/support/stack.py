"""Real processes for tests; they live in celery_harder_dev.stack, shared with bench and chaos."""

from celery_harder_dev.stack import (
    BIN,
    IDLE_DB,
    KEYS,
    READY_TIMEOUT,
    AofRedis,
    ApiServer,
    RedisServer,
    StackEnv,
    StackKeys,
    Worker,
    aof_redis,
    queued_messages,
    running_api,
    running_redis,
    running_worker,
    start_worker,
)

__all__ = [
    "BIN",
    "IDLE_DB",
    "KEYS",
    "READY_TIMEOUT",
    "AofRedis",
    "ApiServer",
    "RedisServer",
    "StackEnv",
    "StackKeys",
    "Worker",
    "aof_redis",
    "queued_messages",
    "running_api",
    "running_redis",
    "running_worker",
    "start_worker",
]
