"""`make bench`: trainctl's benchmarks (issue: plan and apply at scale)."""
