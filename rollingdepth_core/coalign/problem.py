"""The co-alignment problem (SPEC §4.1-4.3): the data a solver sees and the reference objective.

Everything here works on per-group tensors `s n P` and frame indices `s n`, never on a
dense `rows N P` array. Snippet depths may be stored compactly (fp16) or on disk: they are
read in chunks of snippets.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import InvalidInput, InvalidSettings
from ..hooks import Hooks
from ..types import Alignment, SnippetDepths

READ_CHUNK = 32  # snippets read from storage at a time


@dataclass(frozen=True)
class CoalignSettings:
    """Settings of the co-alignment objective and its solvers (reference defaults).

    Attributes:
        subsample: keep every n-th pixel in both axes for the optimisation.
        border: pixels cropped at every border before subsampling.
        num_iterations: Adam iterations (reference solver) / iteration cap (others).
        learning_rate: Adam step size.
        adam_betas: Adam betas.
        depth_term_weight: weight of the depth (1 / inverse depth) term.
        scale_reg_weight: weight of `mean(relu(1 - s)^2)` per group.
        shift_reg_weight: weight of `mean(t^2)` per group.
        min_inverse_depth: values are clipped to this before taking 1 / x.
        dense_normalization: divide the data terms by the size of the reference's dense
            `rows N P` array, empty cells included (needed for parity); otherwise by the
            number of predictions.
        tolerance: the reference (Adam) solver stops after the first step whose loss changed by
            less than this fraction (0: never, as the reference); `fast` and `robust` stop on
            their own criteria.
    """

    subsample: int = 10
    border: int = 2
    num_iterations: int = 2000
    learning_rate: float = 1e-3
    adam_betas: tuple[float, float] = (0.5, 0.9)
    depth_term_weight: float = 1.0
    scale_reg_weight: float = 0.1
    shift_reg_weight: float = 10.0
    min_inverse_depth: float = 1e-3
    dense_normalization: bool = True
    tolerance: float = 0.0

    def __post_init__(self) -> None:
        if self.subsample < 1:
            raise InvalidSettings(f"subsample must be >= 1; got {self.subsample}.")
        if self.border < 0:
            raise InvalidSettings(f"border must be >= 0; got {self.border}.")
        if self.num_iterations < 0:
            raise InvalidSettings(f"num_iterations must be >= 0; got {self.num_iterations}.")
        if not self.tolerance >= 0:
            raise InvalidSettings(f"tolerance must be >= 0 (0: never stop early); got {self.tolerance}.")


@dataclass(frozen=True)
class AlignmentProblem:
    """What a solver sees: subsampled, min-subtracted snippet values and their frames.

    Attributes:
        values: per group `s n P` float32 (`P` optimisation pixels), global minimum subtracted.
        indices: per group `s n` int64 frame indices.
        num_frames: `N`.
        offset: the subtracted global minimum.
    """

    values: tuple[Tensor, ...]
    indices: tuple[Tensor, ...]
    num_frames: int
    offset: float

    @property
    def num_rows(self) -> int:
        """Rows of the reference's dense array: snippet length summed over groups."""
        return sum(int(v.shape[1]) for v in self.values)

    @property
    def num_pixels(self) -> int:
        return int(self.values[0].shape[-1])

    @property
    def device(self) -> torch.device:
        """Where the values are (the solvers compute there)."""
        return self.values[0].device


def snippet_chunks(depth, chunk: int = READ_CHUNK):
    """Yield `(start, stop, b n H W tensor)` over the snippets of one group's storage."""
    for start in range(0, int(depth.shape[0]), chunk):
        stop = min(start + chunk, int(depth.shape[0]))
        yield start, stop, depth[start:stop]


def value_range(snippets: SnippetDepths) -> tuple[float, float]:
    """Smallest and largest value over all snippets and pixels (NaN if any value is NaN)."""
    low, high = float("inf"), float("-inf")
    for depth in snippets.depths:
        for _, _, values in snippet_chunks(depth):
            chunk_low, chunk_high = torch.aminmax(values)
            low, high = min(low, float(chunk_low)), max(high, float(chunk_high))
            if math.isnan(float(chunk_low)) or math.isnan(float(chunk_high)):
                return float("nan"), float("nan")
    return low, high


def global_minimum(snippets: SnippetDepths) -> float:
    """Smallest value over all snippets and pixels (border included), as the reference."""
    return value_range(snippets)[0]


def optimisation_pixels(depth: Tensor, border: int, subsample: int) -> Tensor:
    """Border crop then strided subsampling of `... H W` (reference: `[b:-b, b:-b][::f, ::f]`).

    A border that would leave nothing is not applied.
    """
    height, width = depth.shape[-2:]
    if border > 0 and height > 2 * border and width > 2 * border:
        depth = depth[..., border:-border, border:-border]
    return depth[..., ::subsample, ::subsample]


def snippets_device(snippets: SnippetDepths) -> torch.device:
    """Where the snippet depths are: the device of an in-memory tensor, else the CPU
    (`DiskTensor` storage reads into host memory)."""
    depth = snippets.depths[0]
    return depth.device if isinstance(depth, Tensor) else torch.device("cpu")


def prepare_problem(snippets: SnippetDepths, settings: CoalignSettings,
                    device: torch.device | str | None = None) -> AlignmentProblem:
    """Subtract the global minimum, crop, subsample and flatten every group to `s n P`.

    Reads the snippet storage in chunks, so only the subsampled pixels are held.

    Args:
        snippets: the snippet depths (any storage).
        settings: border and subsampling.
        device: where the problem's tensors go (the solvers compute there); default
            `snippets_device`.
    """
    device = snippets_device(snippets) if device is None else torch.device(device)
    check_snippet_depths(snippets, finite=False)
    offset, top = value_range(snippets)
    if not (math.isfinite(offset) and math.isfinite(top)):
        check_snippet_depths(snippets)  # raises, naming the snippets
    values = tuple(
        torch.cat([
            (optimisation_pixels(chunk, settings.border, settings.subsample)
             .to(device=device, dtype=torch.float32) - offset).flatten(-2)
            for _, _, chunk in snippet_chunks(depth)
        ])
        for depth in snippets.depths
    )
    indices = tuple(g.indices.to(device) for g in snippets.plan.groups)
    return AlignmentProblem(values, indices, snippets.plan.num_frames, offset)


def check_snippet_depths(snippets: SnippetDepths, finite: bool = True) -> None:
    """Raise ``InvalidInput`` for snippet depths that do not match their plan or are not finite.

    Args:
        snippets: the snippet depths.
        finite: also read every value and check it is finite (skip for a cheap check).
    """
    groups = snippets.plan.groups
    if len(groups) == 0 or len(snippets.depths) != len(groups):
        raise InvalidInput(
            f"snippet depths hold {len(snippets.depths)} groups but the plan has {len(groups)}."
        )
    size = tuple(snippets.depths[0].shape[-2:])
    for group, depth in zip(groups, snippets.depths, strict=True):
        if len(depth.shape) != 4 or tuple(depth.shape[:2]) != tuple(group.indices.shape):
            raise InvalidInput(
                f"snippet depths of dilation {group.dilation} must be `s n H W` with s n = "
                f"{tuple(group.indices.shape)}; got {tuple(depth.shape)}."
            )
        if tuple(depth.shape[-2:]) != size:
            raise InvalidInput(
                f"snippet depths of dilation {group.dilation} are {tuple(depth.shape[-2:])}, "
                f"the first group {size}; all groups must have the same H W."
            )
    if finite and not all(math.isfinite(v) for v in value_range(snippets)):
        for group, depth in zip(groups, snippets.depths, strict=True):
            for start, _, values in snippet_chunks(depth):
                bad = (~torch.isfinite(values.flatten(1)).all(1)).nonzero().flatten() + start
                if bad.numel():
                    raise InvalidInput(
                        f"snippet depths of dilation {group.dilation} contain NaN or inf "
                        f"(snippets {bad[:10].tolist()}). Try dtype fp32."
                    )


def frame_means(values: Tensor, frames: Tensor, num_frames: int) -> Tensor:
    """Per-frame mean of predictions.

    Args:
        values: `m P`, one row per prediction.
        frames: `m` frame index of each row.

    Returns:
        `N P`.
    """
    sums = torch.zeros(num_frames, values.shape[-1], dtype=values.dtype, device=values.device)
    sums.index_add_(0, frames, values)
    counts = torch.bincount(frames, minlength=num_frames).to(values.dtype)  # same device
    return sums / counts[:, None]


def objective(
    problem: AlignmentProblem,
    scales: tuple[Tensor, ...],
    shifts: tuple[Tensor, ...],
    settings: CoalignSettings,
) -> Tensor:
    """The SPEC §4 co-alignment objective at given parameters (differentiable, as the reference).

    With `x = s_k v + t_k` every aligned prediction of frame `i` (all groups pooled): the
    target `T_i = mean x` and scale `c_i = mean_p |T_i|` (both detached, as the reference
    does: gradients treat them as constants), the inverse-depth term
    `sum |x - T_i| / c_i`, the same on `1 / clip(x, min_inverse_depth)` times
    ``depth_term_weight``, both divided by the dense `rows N P` size (or by the number of
    predictions x `P` without ``dense_normalization``), plus per group
    `scale_reg_weight mean(relu(1 - s)^2) + shift_reg_weight mean(t^2)`.

    Args:
        problem: `prepare_problem(snippets, settings)`: per group values `s n P`
            (min-subtracted optimisation pixels) and frame indices `s n`.
        scales, shifts: per group `s` (the unknowns; any values, e.g. a solver's
            `Alignment.scales` / `.shifts` or a hand-made alignment), on the problem's device.
        settings: the objective's weights (the same settings `prepare_problem` used).

    Returns:
        The loss, a 0-dim tensor (`objective_value` gives a float).

    Raises:
        InvalidInput: the parameters do not have one value per snippet of every group.
    """
    check_parameters(problem, scales, shifts)
    aligned = torch.cat([
        (v * s[:, None, None] + t[:, None, None]).flatten(0, 1)
        for v, s, t in zip(problem.values, scales, shifts, strict=True)
    ])  # m P
    frames = torch.cat([i.flatten() for i in problem.indices]).to(aligned.device)  # m, where the values are
    if settings.dense_normalization:
        denominator = problem.num_rows * problem.num_frames * problem.num_pixels
    else:
        denominator = aligned.numel()
    data = _relative_l1(aligned, frames, problem.num_frames)
    inverse = 1.0 / aligned.clamp(min=settings.min_inverse_depth)
    data = data + settings.depth_term_weight * _relative_l1(inverse, frames, problem.num_frames)
    return data / denominator + regulariser(scales, shifts, settings)


def check_parameters(problem: AlignmentProblem, scales, shifts) -> None:
    """Raise ``InvalidInput`` unless scales and shifts hold `s` values for every group."""
    expected = [int(v.shape[0]) for v in problem.values]
    got_scales = [tuple(s.shape) for s in scales]
    got_shifts = [tuple(t.shape) for t in shifts]
    wanted = [(k,) for k in expected]
    if got_scales != wanted or got_shifts != wanted:
        raise InvalidInput(
            f"scales and shifts need one value per snippet of every group, {expected}; got "
            f"scales {got_scales} and shifts {got_shifts}."
        )


def _relative_l1(aligned: Tensor, frames: Tensor, num_frames: int) -> Tensor:
    """Sum of |x - target| / mean|target| over predictions and pixels (targets detached)."""
    with torch.no_grad():
        target = frame_means(aligned, frames, num_frames)  # N P
        scale = target.abs().mean(-1)  # N
    return ((aligned - target[frames]).abs() / scale[frames, None]).sum()


def regulariser(
    scales: tuple[Tensor, ...], shifts: tuple[Tensor, ...], settings: CoalignSettings
) -> Tensor:
    """Sum over groups of `w_s mean(relu(1 - s)^2) + w_t mean(t^2)`."""
    return sum(
        settings.scale_reg_weight * torch.relu(1 - s).square().mean()
        + settings.shift_reg_weight * t.square().mean()
        for s, t in zip(scales, shifts, strict=True)
    )


def objective_value(
    problem: AlignmentProblem, scales: tuple[Tensor, ...], shifts: tuple[Tensor, ...],
    settings: CoalignSettings,
) -> float:
    """`objective` as a float, without autograd (parameters moved to the problem's device)."""
    device = problem.device
    with torch.no_grad():
        return float(objective(problem, tuple(s.to(device=device, dtype=torch.float32) for s in scales),
                               tuple(t.to(device=device, dtype=torch.float32) for t in shifts),
                               settings))


Solver = Callable[[AlignmentProblem, CoalignSettings, Hooks], Alignment]
"""A co-alignment solver: the problem and settings in, scales and shifts out."""
