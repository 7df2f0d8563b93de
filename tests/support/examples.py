"""The examples in k8s/examples/ (and its schedules/ folder) and what each one must end with."""

from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "k8s" / "examples"
FINAL_PHASES = {"Succeeded", "Failed", "Cancelled"}
# name -> (final phase, result); None where the result is not a fixed value.
EXPECTED = {
    "chain-example": ("Succeeded", 24),
    "group-example": ("Succeeded", [0, 2, 4, 6, 8]),
    "chord-example": ("Succeeded", 90),
    "nested-example": ("Succeeded", 53),
    "document-pipeline-example": ("Succeeded", None),
    "failing-example": ("Failed", None),
}

# k8s/examples/schedules/: CronTaskWorkflows, a folder of their own so that applying
# k8s/examples/ (not recursive) starts no schedule. name -> the result of each run.
SCHEDULE_EXAMPLES = EXAMPLES / "schedules"
SCHEDULE_EXPECTED = {"every-five-minutes-example": 6}
