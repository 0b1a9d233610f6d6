"""How an interface names its settings in messages.

The same check runs behind the Python API, the command line and the nodes; its message must
name the setting the way the user set it: ``refine_steps=-1`` in Python, ``--refine-steps``
on the command line, the ``num_steps`` widget in ComfyUI. A `Wording` carries that mapping.

>>> CLI = Wording("cli", {"refine_steps": "--refine-steps"})
>>> CLI.assign("refine_steps", 0)
'--refine-steps 0'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

STYLES = ("api", "cli", "node")


@dataclass(frozen=True)
class Wording:
    """Names of settings as one interface shows them.

    Attributes:
        style: "api" (Python arguments), "cli" (flags) or "node" (widgets).
        names: setting -> the interface's name for it (unlisted settings keep their name).
    """

    style: str = "api"
    names: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ValueError(f"style must be one of {', '.join(STYLES)}; got {self.style!r}.")

    def name(self, setting: str) -> str:
        """What the user calls ``setting`` here."""
        return self.names.get(setting, setting)

    def assign(self, setting: str, value: object) -> str:
        """How the user sets ``setting`` to ``value`` here: ``x=1``, ``--x 1``, ``x = 1``."""
        if self.style == "cli":
            return f"{self.name(setting)} {value}"
        if self.style == "node":
            return f"{self.name(setting)} = {value}"
        return f"{self.name(setting)}={value!r}"


API = Wording()
