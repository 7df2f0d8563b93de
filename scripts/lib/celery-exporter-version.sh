#!/usr/bin/env bash
# Print the celery-exporter release the project runs: the chart's exporter.image.tag
# (charts/celery-harder/values.yaml), the one place the version is written down.
# scripts/build-cluster-images.sh builds that image tag from PyPI
# prometheus-exporter-celery==<it>, and scripts/install-celery-exporter.sh installs the
# same release for the tests and `make dev`; tests/unit/test_exporter_version.py holds
# them equal.
set -euo pipefail
values="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/charts/celery-harder/values.yaml"
# The first `tag:` under the top-level `exporter:` block (its `image:` map).
version="$(awk '
  /^exporter:/ { inside = 1; next }
  inside && /^[^ #]/ { exit }
  inside && /^ +tag:/ { sub(/^ +tag: */, ""); gsub(/["\047]/, ""); sub(/ *#.*/, ""); print; exit }
' "$values")"
[[ -n "$version" ]] || { echo "no exporter.image.tag in $values" >&2; exit 1; }
echo "$version"
