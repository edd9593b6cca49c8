"""srlab: a reproducible super-resolution lab built on DVC and PyTorch."""

__version__ = "0.1.0"
