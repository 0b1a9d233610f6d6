"""The ComfyUI nodes: one per stage of RollingDepth, plus I/O and an all-in-one node.

Stage graph (socket types in capitals)::

    Load Model ─ ROLLINGDEPTH_MODEL ──────────────┬──────────────────┐
    IMAGE ─ Sample Snippets ─ ROLLINGDEPTH_SNIPPET_PLAN ─ Denoise Snippets
            ─ ROLLINGDEPTH_SNIPPET_DEPTHS ─ Co-align ─ ROLLINGDEPTH_DEPTH ─ Refine ─ ROLLINGDEPTH_DEPTH
    ROLLINGDEPTH_DEPTH ─ Depth to Image ─ IMAGE        IMAGE ─ Image to Depth ─ ROLLINGDEPTH_DEPTH
    ROLLINGDEPTH_DEPTH ─ Save Depth (EXR / 16-bit PNG / NPZ)
    Load Plate Sequence ─ VIDEO (lazy, colour-converted)      ROLLINGDEPTH_DEPTH ─ Convert Depth
            ─ ROLLINGDEPTH_CONVERTED_DEPTH (normalised / linear Z) ─ Save Depth

Importing this package never imports ComfyUI (only `comfy_bridge` does, inside functions).
"""

from __future__ import annotations

from . import comfy_bridge
from .coalign import RollingDepthCoalign
from .denoise_snippets import RollingDepthDenoiseSnippets
from .load_model import RollingDepthLoadModel
from .output import RollingDepthDepthToImage, RollingDepthImageToDepth, RollingDepthSaveDepth
from .pipeline import RollingDepth
from .plates import RollingDepthConvertDepth, RollingDepthLoadPlateSequence
from .refine import RollingDepthRefine
from .sample_snippets import RollingDepthSampleSnippets

NODE_CLASS_MAPPINGS = {
    "RollingDepthLoadModel": RollingDepthLoadModel,
    "RollingDepthSampleSnippets": RollingDepthSampleSnippets,
    "RollingDepthDenoiseSnippets": RollingDepthDenoiseSnippets,
    "RollingDepthCoalign": RollingDepthCoalign,
    "RollingDepthRefine": RollingDepthRefine,
    "RollingDepthDepthToImage": RollingDepthDepthToImage,
    "RollingDepthImageToDepth": RollingDepthImageToDepth,
    "RollingDepthSaveDepth": RollingDepthSaveDepth,
    "RollingDepth": RollingDepth,
    "RollingDepthLoadPlateSequence": RollingDepthLoadPlateSequence,
    "RollingDepthConvertDepth": RollingDepthConvertDepth,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "RollingDepthLoadModel": "RollingDepth Load Model",
    "RollingDepthSampleSnippets": "RollingDepth Sample Snippets",
    "RollingDepthDenoiseSnippets": "RollingDepth Denoise Snippets",
    "RollingDepthCoalign": "RollingDepth Co-align",
    "RollingDepthRefine": "RollingDepth Refine",
    "RollingDepthDepthToImage": "RollingDepth Depth to Image",
    "RollingDepthImageToDepth": "RollingDepth Image to Depth",
    "RollingDepthSaveDepth": "RollingDepth Save Depth",
    "RollingDepth": "RollingDepth (one node)",
    "RollingDepthLoadPlateSequence": "RollingDepth Load Plate Sequence",
    "RollingDepthConvertDepth": "RollingDepth Convert Depth",
}

comfy_bridge.register_model_folder()

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
