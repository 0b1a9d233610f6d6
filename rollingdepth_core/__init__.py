"""RollingDepth as a plain PyTorch library: video in, temporally consistent depth out.

Stages (each callable on its own)::

    model    = load_model("prs-eth/rollingdepth-v1-0", device="cuda", dtype="fp16")
    plan     = plan_snippets(num_frames, dilations=(1, 10, 25))
    encoded  = encode_frames(model, frames, processing_resolution=768)
    noise    = make_noise(encoded.latents.shape[-2:], seed=0)
    snippets = denoise_snippets(model, encoded, plan, noise)
    video, alignment = coalign_depth(snippets)
    depth    = refine_depth(model, encoded, video.inverse_depth, noise, num_steps=10)

or all at once: ``estimate_depth(model, frames, PRESETS["fast"])``.
This package never imports ComfyUI.
"""

import importlib
import sys
import types

from .errors import (
    CheckpointError,
    InvalidInput,
    InvalidSettings,
    NumericalError,
    OutputExists,
    RollingDepthError,
)
from .hooks import Hooks
from .presets import PRESETS, Preset, get_preset

__version__ = "0.1.0"

# The parts that import torch and diffusers load on first use (name -> module), so that
# `import rollingdepth_core` and the command line's start stay light: Ctrl-C while they
# load gives one line, not a traceback through torch's import. Add new public names here.
_LAZY = {
    "merge_aligned": ".coalign.merge", "merge_with_spread": ".coalign.merge",
    "normalize_depth": ".coalign.merge",
    "coalign": ".coalign.methods", "coalign_depth": ".coalign.methods",
    "CoalignSettings": ".coalign.problem",
    "DEFAULT_REPO_ID": ".model.checkpoint", "load_model": ".model.checkpoint",
    "make_noise": ".model.noise",
    "detect_cuts": ".io.cuts",
    "DepthResult": ".pipeline", "estimate_depth": ".pipeline",
    "denoise_snippets": ".stages.denoise", "encode_frames": ".stages.encode",
    "refine_depth": ".stages.refine", "plan_snippets": ".stages.snippets",
    "Alignment": ".types", "DepthModel": ".types", "DepthVideo": ".types", "EncodedFrames": ".types",
    "RunBatches": ".types", "SnippetDepths": ".types", "SnippetPlan": ".types", "ClipInfo": ".types",
    # plates in, linear depth out (issue 10)
    "ImageSequenceSource": ".io.plates", "ExrOptions": ".io.exr", "write_depth_sequence": ".io.exr",
    "ConvertedDepth": ".conversion.converted", "DepthConversion": ".conversion.convert",
    "convert_clip": ".conversion.convert", "convert_depth": ".conversion.convert",
}


class _Package(types.ModuleType):
    """This package, keeping the function `coalign` where Python would bind the subpackage.

    Importing a submodule binds it as an attribute of its parent. `coalign` is both a
    public function and a subpackage (`rollingdepth_core.coalign`); loaded eagerly, the
    function was bound last. Loaded lazily, the subpackage would win, so that binding is
    skipped and `__getattr__` gives the function (the subpackage stays in sys.modules).
    """

    def __setattr__(self, name: str, value) -> None:
        if name in _LAZY and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "DEFAULT_REPO_ID", "PRESETS", "Alignment", "CheckpointError", "ClipInfo", "CoalignSettings",
    "ConvertedDepth", "DepthConversion", "DepthModel", "DepthResult", "DepthVideo", "EncodedFrames",
    "ExrOptions", "Hooks", "ImageSequenceSource", "InvalidInput", "InvalidSettings", "NumericalError",
    "OutputExists", "Preset", "RollingDepthError", "RunBatches", "SnippetDepths", "SnippetPlan", "coalign",
    "coalign_depth", "convert_clip", "convert_depth", "denoise_snippets", "detect_cuts", "encode_frames",
    "estimate_depth", "get_preset", "load_model", "make_noise", "merge_aligned", "merge_with_spread",
    "normalize_depth", "plan_snippets", "refine_depth", "write_depth_sequence",
]
