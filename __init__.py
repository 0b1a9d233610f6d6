"""ComfyUI entry point of the RollingDepth node pack (the nodes live in `nodes/`).

ComfyUI loads this folder as a package, so relative imports work. pytest or a plain
`import` may load this file as a top-level module (for example from a hyphenated checkout);
then relative imports cannot work and nothing is exported.
"""

if __package__:
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: F401

    __all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
