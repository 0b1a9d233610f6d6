"""Inputs shared by several nodes: the frames (IMAGE or VIDEO), seeds and batch sizes."""

from __future__ import annotations

import inspect

from ..rollingdepth_core.errors import InvalidSettings, RollingDepthError
from ..rollingdepth_core.runtime.batch_sizes import AUTO
from ..rollingdepth_core.types import DEFAULT_SNIPPETS_PER_BATCH
from ..rollingdepth_core.validation import check_settings
from ..rollingdepth_core.wording import Wording

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


def check_ranges(node: type, values: dict) -> str | None:
    """The first widget value outside its declared min/max (ComfyUI's own check), or None."""
    declared = node.INPUT_TYPES()
    spec = {**declared.get("required", {}), **declared.get("optional", {})}
    for widget, value in values.items():
        options = spec[widget][1] if widget in spec and len(spec[widget]) > 1 else {}
        if value is None or not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        if "min" in options and value < options["min"]:
            return f"{widget} must be at least {options['min']}; got {value}."
        if "max" in options and value > options["max"]:
            return f"{widget} must be at most {options['max']}; got {value}."
    return None


def check_widgets(node: type, settings: dict[str, str], **values) -> bool | str:
    """A node's ``VALIDATE_INPUTS``: the widget values the core checks, at queue time.

    Only for what ComfyUI cannot check itself (text such as dilations or a file prefix,
    values that must agree); plain ranges are left to ComfyUI's own min/max check, which
    names the right input (the declared limits are the core's). ComfyUI skips that check for
    every input ``VALIDATE_INPUTS`` takes, so their declared ranges are checked here first;
    then the core's check of the setting each widget sets (`validation.SETTINGS`, as the
    command line and the Python API run it), worded with the widget's name. Linked inputs
    arrive as None: checked when they run.

    Args:
        node: the node class (its ``INPUT_TYPES`` give the ranges).
        settings: widget name -> core setting name, for the widgets the core checks.
        values: the widget values.

    Returns:
        True, or the message the front end shows.
    """
    out_of_range = check_ranges(node, values)
    if out_of_range:
        return out_of_range
    known = {settings[w]: v for w, v in values.items() if w in settings and v is not None}
    try:
        check_settings(known, Wording("node", {s: w for w, s in settings.items()}))
    except RollingDepthError as error:
        return str(error)
    return True


HIDDEN_PROMPT = {"prompt": "PROMPT"}  # ComfyUI hands the node the whole graph


def check_graph(prompt: dict | None) -> None:
    """Refuse a graph in which one of this pack's nodes has a widget value it refuses.

    Each node of this pack in the graph gets its widgets' declared ranges checked and its
    ``VALIDATE_INPUTS`` run. ComfyUI runs every output whose nodes are valid and only marks
    the others: a Save Depth
    with a prefix outside the output folder would get a red outline (maybe off screen) while
    the expensive rest of the graph ran. The expensive nodes call this first, so such a graph
    stops in a second, with the front end's error dialog, before any work.

    Args:
        prompt: the graph as ComfyUI queued it (the hidden ``PROMPT`` input); None outside
            ComfyUI.

    Raises:
        InvalidSettings: naming the node, its id and what is wrong.
    """
    from . import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

    for node_id, node in sorted((prompt or {}).items()):
        class_type = node.get("class_type") if isinstance(node, dict) else None
        cls = NODE_CLASS_MAPPINGS.get(class_type)
        if cls is None:
            continue
        given = node.get("inputs", {})
        inputs = {k: None if isinstance(v, list) else v for k, v in given.items()}  # a list is a link
        result = check_ranges(cls, inputs) or True
        validate = getattr(cls, "VALIDATE_INPUTS", None)
        if result is True and validate is not None:
            result = validate(**{name: inputs.get(name) for name in inspect.signature(validate).parameters})
        if result is not True:
            raise InvalidSettings(
                f"{NODE_DISPLAY_NAME_MAPPINGS[class_type]} (node {node_id}): {result} Nothing was "
                "computed; fix it and queue again."
            )
