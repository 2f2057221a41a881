"""Learned components of fuseagent that are trained here on public data (small, CPU-trainable).

* :mod:`fuseagent.learned.fuscore` — FuScore, a fusion-quality scorer trained on human opinions
  (Waterloo MEF) and on controlled, graded degradations (IVIF, MFF).
"""
