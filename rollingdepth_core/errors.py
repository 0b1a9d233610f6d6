"""Errors a user can act on: what went wrong, the value, and the fix."""

from __future__ import annotations


class RollingDepthError(Exception):
    """Base class of every error RollingDepth raises on purpose."""


class InvalidInput(RollingDepthError, ValueError):
    """The data handed in (frames, depth, snippets) cannot be processed."""


class InvalidSettings(RollingDepthError, ValueError):
    """A setting (dilations, resolution, steps...) is out of range."""


class CheckpointError(RollingDepthError, FileNotFoundError):
    """A checkpoint is missing, incomplete or corrupt."""


class NumericalError(RollingDepthError, ArithmeticError):
    """A stage produced NaN or infinite values."""


class OutputExists(InvalidSettings):
    """The output folder already holds results of that name (and replacing them was not asked)."""


class MissingDependency(RollingDepthError, ImportError):
    """An optional dependency (an extra of the package, e.g. ``rollingdepth[farm]``) is missing."""
