"""Fusion operators: the last action of every trajectory (``[task:fusion][model:...]``).

=================  ======================  ==========================================
model              tasks                   method
=================  ======================  ==========================================
``laplacian``      ivif, mff               Laplacian pyramid, local-energy max detail
``gff``            ivif, mef, mff          guided filtering fusion (Li et al. 2013)
``regionlp``       ivif (pairs)            region decision map blending Laplacian pyramids
``wavelet``        ivif, mff               DWT, max-activity detail, mean approx.
``mertens``        mef                     exposure fusion (Mertens et al. 2007)
``spd``            mef                     structural patch decomposition (Ma et al. 2017)
``spd_global``     mef                     SPD-MEF, 31x31 patches, smooth global mean layer
``focus``          mff                     focus decision map refined by guided filter
=================  ======================  ==========================================
"""

from __future__ import annotations

from .ivif import GuidedFilterFusion, LaplacianFusion, WaveletFusion, gff_weights
from .region import RegionPyramidFusion, region_decision, region_pyramid_fuse
from .ivtfuse import IVTFuseFusion, IVTFuseNoFSA, IVTFuseNoHPA, IVTFuseNoText
from .mef import GlobalStructuralPatchFusion, MertensFusion, StructuralPatchFusion, spd_fuse
from .mff import FocusFusion, decision_map, sum_modified_laplacian

__all__ = [
    "LaplacianFusion",
    "GuidedFilterFusion",
    "WaveletFusion",
    "RegionPyramidFusion",
    "region_decision",
    "region_pyramid_fuse",
    "MertensFusion",
    "StructuralPatchFusion",
    "GlobalStructuralPatchFusion",
    "spd_fuse",
    "FocusFusion",
    "gff_weights",
    "decision_map",
    "sum_modified_laplacian",
]
