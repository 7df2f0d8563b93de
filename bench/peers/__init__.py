"""Peer task queues on the same Redis (B2), run from a venv of their own.

scripts/install-bench-peers.sh installs it; `bench.drain` starts them.

Each module imports only the standard library, redis and its peer library.
"""
