"""Co-alignment (SPEC §4): one scale and shift per snippet, then a streamed merge.

`problem` holds the data a solver sees and the reference objective; one module per solver
(`reference`, `fast`, `robust`); `methods` picks a solver by name; `merge` averages the
aligned predictions. The fast solver's equations are in `fast_system`, its last stage on
the exact objective in `polish`; `newton_setup` (unknowns, start, damped factorisation),
`slots` (frame-major data) and `linalg/` are what the Newton solvers share.
"""

from .merge import merge_aligned, merge_with_spread, normalize_depth
from .methods import DEFAULT_METHOD, SOLVERS, available_methods, coalign, coalign_depth
from .problem import (
    AlignmentProblem,
    CoalignSettings,
    objective,
    objective_value,
    prepare_problem,
)

__all__ = [
    "DEFAULT_METHOD",
    "SOLVERS",
    "AlignmentProblem",
    "CoalignSettings",
    "available_methods",
    "coalign",
    "coalign_depth",
    "merge_aligned",
    "merge_with_spread",
    "normalize_depth",
    "objective",
    "objective_value",
    "prepare_problem",
]
