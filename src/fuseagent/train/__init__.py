"""Training of fuseagent's learned components (``fuseagent train <what> --config ...``).

* :mod:`fuseagent.train.ivtfuse` — the IVTFuse text-guided IVIF network.
* :mod:`fuseagent.train.fuscore` — FuScore, the learned fusion-quality scorer.
"""
