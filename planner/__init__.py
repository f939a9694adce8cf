"""trainctl: infrastructure as code for ML training on AWS."""

__version__ = "0.1.0"
