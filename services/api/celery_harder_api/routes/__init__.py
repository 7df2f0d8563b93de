"""Routers: each wires HTTP to celery_harder functions and holds no logic of its own."""
