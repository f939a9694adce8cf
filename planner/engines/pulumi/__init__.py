"""The Pulumi engine (`--engine pulumi`): stacks/storage.py and stacks/compute.py run
through the Automation API, each pass previewed and cross-checked against the plan.

Importing this package never imports pulumi (only `engine.run` and the stack programs
do), so `trainctl --help` and the direct engine stay fast.
"""

from __future__ import annotations

from planner.engines.pulumi.preview import (
    PreviewReview,
    PreviewWarning,
    Refusal,
    check_preview,
    review_preview,
)

__all__ = ["PreviewReview", "PreviewWarning", "Refusal", "check_preview", "review_preview"]
