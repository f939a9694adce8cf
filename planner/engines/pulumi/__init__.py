"""The Pulumi engine (`--engine pulumi`): stacks/storage.py and stacks/compute.py run
through the Automation API, each pass previewed and cross-checked against the plan.

Importing this package never imports pulumi (only `engine.run` and the stack programs
do), so `trainctl --help` and the direct engine stay fast.
"""

from __future__ import annotations

from planner.engines.pulumi.inputs import InputsError, inputs_for, with_volume_ids
from planner.engines.pulumi.preview import (
    PreviewReview,
    PreviewWarning,
    Refusal,
    check_preview,
    preview_warnings,
    review_preview,
)
from planner.engines.pulumi.schema import Deployed, Inputs, StackInputs
from planner.engines.pulumi.state import from_deployment

__all__ = ["Deployed", "Inputs", "InputsError", "PreviewReview", "PreviewWarning", "Refusal",
           "StackInputs", "check_preview", "from_deployment", "inputs_for", "preview_warnings",
           "review_preview", "with_volume_ids"]
