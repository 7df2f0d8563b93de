"""The example TaskWorkflows in k8s/examples/ and what each one must end with."""

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
