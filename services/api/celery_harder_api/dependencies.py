"""FastAPI dependencies: the settings and task client created at start-up."""

from typing import Annotated

from fastapi import Depends, Request

from celery_harder.settings import Settings
from celery_harder.task_client import TaskClient


def get_task_client(request: Request) -> TaskClient:
    """The process's TaskClient."""
    client: TaskClient = request.app.state.task_client
    return client


def get_app_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


Client = Annotated[TaskClient, Depends(get_task_client)]
AppSettings = Annotated[Settings, Depends(get_app_settings)]
