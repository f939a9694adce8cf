"""Pulumi programs for `trainctl apply --engine pulumi`: `storage.program(inputs)` and
`compute.program(inputs)` declare a stack's resources from plain data (the JSON form of
`planner.engines.pulumi.schema.StackInputs`) and nothing else."""
