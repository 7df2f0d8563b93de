"""Task modules listed in `background.celery.celery_app`'s include."""
