"""`make bench` (`python -m bench`): every benchmark group, figures as ratios to same-run baselines.

Everything runs for real on loopback: redis-server, prefork workers, uvicorn, hey,
redis-benchmark, the peer queues, and kube-apiserver with etcd and the kopf operator
(B6). Timings on a shared 2-core machine are noisy: read the ratios, measured in one
run. `--size tiny` (run by a test in `make test`) keeps every benchmark working; it
proves nothing about speed.
"""

import sys

from bench.runner import main

if __name__ == "__main__":
    sys.exit(main())
