"""Inputs shared by several nodes: the frames (IMAGE or VIDEO), seeds and batch sizes."""

from __future__ import annotations

from ..rollingdepth_core.runtime.batch_sizes import AUTO
from ..rollingdepth_core.types import DEFAULT_SNIPPETS_PER_BATCH

SEED_MAX = 2**63 - 1


def seed_input(tooltip: str) -> tuple:
    """A seed widget without ComfyUI's 'randomize after generate': a fixed seed keeps the cache."""
    return ("INT", {"default": 0, "min": 0, "max": SEED_MAX, "control_after_generate": False,
                    "tooltip": tooltip})


def batch_input() -> tuple:
    """The snippets-per-UNet-call widget of the nodes that run the UNet; 0 = automatic."""
    return ("INT", {
        "default": 0, "min": 0, "max": 256,
        "tooltip": "Snippets per UNet call. 0 = automatic: as many as fit in free VRAM "
                   f"({DEFAULT_SNIPPETS_PER_BATCH} on a CPU). An out-of-memory batch is halved "
                   "and retried, nothing is lost.",
    })


def batch_value(snippets_per_batch: int) -> int | str:
    """The widget's value for the core: 0 -> "auto"."""
    return AUTO if snippets_per_batch == 0 else snippets_per_batch


def frames_inputs(what: str) -> dict:
    """The optional `images` and `video` sockets: a node reads exactly one of them.

    Args:
        what: how the node uses the frames, for the tooltips.
    """
    return {
        "images": ("IMAGE", {"tooltip": f"The video frames as an IMAGE batch ({what}). Or connect video."}),
        "video": ("VIDEO", {
            "tooltip": f"The video from Load Video ({what}), decoded lazily at processing size: "
                       "long clips never fill RAM. Or connect images.",
        }),
    }
