"""Benchmarks run from the command line (``fuseagent bench …``): one module per benchmark."""
