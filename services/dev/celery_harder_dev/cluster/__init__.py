"""A single-node Kubernetes cluster on this machine, built from upstream sources (T4-local)."""

from celery_harder_dev.cluster.node import ClusterError, LocalCluster

__all__ = ["ClusterError", "LocalCluster"]
