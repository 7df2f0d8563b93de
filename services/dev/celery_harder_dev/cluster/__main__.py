"""`python -m celery_harder_dev.cluster up|down|status`: what `make cluster` runs."""

import argparse
import sys

from celery_harder_dev.cluster.node import LocalCluster


def main(argv: list[str] | None = None) -> int:
    """Parse the command and run it; prints KUBECONFIG=<path> on stdout after `up`."""
    parser = argparse.ArgumentParser(prog="python -m celery_harder_dev.cluster")
    parser.add_argument("command", choices=["up", "down", "status"])
    command = parser.parse_args(argv).command
    cluster = LocalCluster()
    if command == "up":
        kubeconfig = cluster.up()
        print(f"KUBECONFIG={kubeconfig}")
        print(
            f"# next: export KUBECONFIG={kubeconfig}\n"
            "#       helm install celery-harder charts/celery-harder -n celery-harder "
            "--create-namespace -f charts/celery-harder/ci/local-cluster-values.yaml",
            file=sys.stderr,
        )
    elif command == "down":
        cluster.down()
    else:
        for name, daemon in cluster.daemons().items():
            state = "running" if daemon and daemon.alive() else "stopped"
            pid = f" (pid {daemon.pid})" if daemon and daemon.alive() else ""
            print(f"{name:<24} {state}{pid}")
        if not cluster.running():
            return 1
        print(f"KUBECONFIG={cluster.layout.kubeconfig}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
