"""Learned networks of fuseagent (PyTorch): architectures, weight files and tiled inference.

* :mod:`fuseagent.models.ivtfuse` — IVTFuse, text-guided infrared–visible fusion.
* :mod:`fuseagent.models.text` — offline caption token embeddings (all-MiniLM-L6-v2).
"""
