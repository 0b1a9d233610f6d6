"""Typed values that the stages hand to each other.

Each is a frozen dataclass: a stage never changes its input, it returns a new value
(ComfyUI caches outputs and hands the same object to every consumer).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import torch
from torch import Tensor

from .errors import InvalidSettings

# Batch sizes where free accelerator memory is unknown (a CPU), and of stages called without
# batches: snippets per UNet call and frames per VAE call. Written here once.
DEFAULT_SNIPPETS_PER_BATCH = 8
DEFAULT_VAE_BATCH_SIZE = 4


@dataclass
class DepthModel:
    """A loaded RollingDepth checkpoint (a resource: `to()` moves its weights in place).

    Attributes:
        unet: `UNet2DConditionModel` (8 input channels) with cross-frame attention installed.
        vae: `AutoencoderKL`.
        scheduler_config: the checkpoint's `DDIMScheduler` config; `make_scheduler()` builds
            a fresh scheduler from it (schedulers keep state, so stages never share one).
        empty_text_embed: `1 t c`, the embedding of the empty prompt.
        dtype: compute dtype of unet and vae.
        source: where the weights came from (folder or repo id), for messages.
    """

    unet: torch.nn.Module
    vae: torch.nn.Module
    scheduler_config: dict
    empty_text_embed: Tensor
    dtype: torch.dtype
    source: str = ""

    @property
    def device(self) -> torch.device:
        """The device the UNet currently lives on."""
        return next(self.unet.parameters()).device

    def make_scheduler(self):
        """A new `DDIMScheduler` built from the checkpoint's config."""
        from diffusers import DDIMScheduler

        return DDIMScheduler.from_config(self.scheduler_config)

    def to(self, device: torch.device | str) -> DepthModel:
        """Move unet, vae and the text embedding to ``device`` (in place) and return self."""
        self.unet.to(device)
        self.vae.to(device)
        self.empty_text_embed = self.empty_text_embed.to(device)
        return self


@dataclass(frozen=True)
class RunBatches:
    """Batch sizes of one run, resolved once at the top and passed to every stage.

    The pipeline, each node and the CLI resolve them (`runtime.batch_sizes.resolve_run_batches`:
    a number, or "auto" from free accelerator memory); the stages below only use them. A batch
    that runs out of accelerator memory is still halved and retried where it runs.

    Attributes:
        snippets: snippets per UNet call (denoising and refinement).
        vae: frames per VAE call (encoding and decoding).
    """

    snippets: int = DEFAULT_SNIPPETS_PER_BATCH
    vae: int = DEFAULT_VAE_BATCH_SIZE

    def __post_init__(self) -> None:
        for name in ("snippets", "vae"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidSettings(
                    f"RunBatches.{name} must be a whole number >= 1; got {value!r}. "
                    "Resolve 'auto' first with runtime.batch_sizes.resolve_run_batches."
                )


def check_run_batches(batches) -> RunBatches:
    """``batches`` itself; ``InvalidSettings`` unless it is a `RunBatches` (stages take no bare numbers)."""
    if not isinstance(batches, RunBatches):
        raise InvalidSettings(
            f"batches must be RunBatches(snippets=..., vae=...); got {batches!r}. "
            "For 'auto', use runtime.batch_sizes.resolve_run_batches."
        )
    return batches


@dataclass(frozen=True)
class SnippetGroup:
    """All snippets of one dilation.

    Attributes:
        dilation: effective frame spacing `g` (after capping).
        requested_dilation: the dilation asked for.
        indices: `s n` int64, frame indices of each snippet (`s + g * arange(n)`).
    """

    dilation: int
    requested_dilation: int
    indices: Tensor

    @property
    def num_snippets(self) -> int:
        return int(self.indices.shape[0])

    @property
    def snippet_length(self) -> int:
        return int(self.indices.shape[1])


@dataclass(frozen=True)
class SnippetPlan:
    """Which frames go into which snippet, for every dilation group.

    Attributes:
        num_frames: `N`, frames in the clip.
        snippet_length: `n`, frames per snippet (shorter than asked on very short clips).
        groups: one `SnippetGroup` per effective dilation, in the order asked.
    """

    num_frames: int
    snippet_length: int
    groups: tuple[SnippetGroup, ...]

    @property
    def num_snippets(self) -> int:
        return sum(g.num_snippets for g in self.groups)

    @property
    def dilations(self) -> tuple[int, ...]:
        return tuple(g.dilation for g in self.groups)

    def describe(self) -> str:
        """One line per group: dilation, number of snippets, first snippets' frames."""
        lines = [
            f"{self.num_frames} frames, snippets of {self.snippet_length}, "
            f"{self.num_snippets} snippets"
        ]
        for g in self.groups:
            capped = (
                f" (asked {g.requested_dilation})" if g.requested_dilation != g.dilation else ""
            )
            first = ", ".join(str(tuple(row.tolist())) for row in g.indices[:3])
            more = ", ..." if g.num_snippets > 3 else ""
            lines.append(
                f"  dilation {g.dilation}{capped}: {g.num_snippets} snippets: {first}{more}"
            )
        if self.num_frames == 1:
            lines.append(
                "  note: one frame only (a still image?): video depth of one frame is "
                "single-image depth."
            )
        return "\n".join(lines)


@dataclass(frozen=True)
class ClipInfo:
    """Where a clip came from, so that its outputs can match it (frame numbers, rate, size).

    Attributes:
        name: a short name for output files (``"plate"`` for ``plate.####.exr``).
        frame_numbers: the frame number of every frame (``1001, 1002, ...``; videos: 0, 1, ...).
        frame_rate: the exact frame rate (``Fraction(24000, 1001)`` for 23.976), or None.
        padding: digits of the frame numbers in file names.
        pixel_aspect: pixel width over height of the stored frames (2.0: 2x anamorphic).
        stored_size: `(H, W)` in stored pixels of what was read (the display window for
            plates), or None when the same as the depth's input size.
        display_window: `(x, y, width, height)` of the plate's frame, or None.
        data_window: `(x, y, width, height)` of the pixels read, when not the display window.
        colour: the input colour conversion, in words ("" = none / unknown).
        source: the path or pattern read.
    """

    name: str = "frames"
    frame_numbers: tuple[int, ...] = ()
    frame_rate: Fraction | None = None
    padding: int = 4
    pixel_aspect: float = 1.0
    stored_size: tuple[int, int] | None = None
    display_window: tuple[int, int, int, int] | None = None
    data_window: tuple[int, int, int, int] | None = None
    colour: str = ""
    source: str = ""

    def numbers_for(self, count: int) -> tuple[int, ...]:
        """Frame numbers of ``count`` frames: our own when they fit, else 0 .. count - 1."""
        if len(self.frame_numbers) == count:
            return tuple(self.frame_numbers)
        return tuple(range(count))


@dataclass(frozen=True)
class EncodedFrames:
    """RGB latents of a clip at processing size, kept for snippet inference and refinement.

    Attributes:
        latents: `N 4 h w`, VAE posterior mean x scaling factor, of the padded frames.
        size: `(H, W)` processing size, before padding to a multiple of 8.
        input_size: `(H0, W0)` size of the frames handed in.
        fingerprint: cheap summary of the source frames, to recognise them later.
        clip: where the frames came from (frame numbers, rate, pixel aspect), or None.
    """

    latents: Tensor
    size: tuple[int, int]
    input_size: tuple[int, int]
    fingerprint: tuple = ()
    clip: ClipInfo | None = None

    @property
    def num_frames(self) -> int:
        return int(self.latents.shape[0])

    @property
    def padded_size(self) -> tuple[int, int]:
        return (int(self.latents.shape[-2]) * 8, int(self.latents.shape[-1]) * 8)


@dataclass(frozen=True)
class SnippetDepths:
    """Depth of every snippet, as decoded by the VAE (model units, roughly -1..1).

    Attributes:
        plan: the snippet plan these depths follow.
        depths: per group `s n H W`, at processing size (padding removed), on the host in a
            compact dtype (fp16 unless the model ran in fp32).
            A group may be a `runtime.storage.DiskTensor` instead (``storage_dir``): read it
            by slices.
        encoded: the RGB latents the snippets came from (reused by refinement), or None.
        noise: `1 4 h w` float32, the shared noise (reused by refinement), or None.
        latents: per group `s n 4 h w` float32, the depth latents the depths were decoded
            from (`denoise_snippets(..., return_latents=True)`), or None.
    """

    plan: SnippetPlan
    depths: tuple[Tensor, ...]
    encoded: EncodedFrames | None = None
    noise: Tensor | None = None
    latents: tuple[Tensor, ...] | None = None

    @property
    def size(self) -> tuple[int, int]:
        return (int(self.depths[0].shape[-2]), int(self.depths[0].shape[-1]))


@dataclass(frozen=True)
class Alignment:
    """Per-snippet affine parameters found by co-alignment.

    The aligned prediction of snippet `k` is `scales[k] * (d - offset) + shifts[k]`.

    Attributes:
        scales: per group `s` float32.
        shifts: per group `s` float32.
        offset: the global minimum subtracted from every snippet before alignment.
        objective: value of the co-alignment objective at the returned parameters.
        method: which solver produced it.
        loss_history: objective per iteration (reference solver), or None.
    """

    scales: tuple[Tensor, ...]
    shifts: tuple[Tensor, ...]
    offset: float
    objective: float
    method: str
    loss_history: Tensor | None = field(default=None, repr=False)


@dataclass(frozen=True)
class DepthVideo:
    """A depth video: affine-invariant inverse depth (larger = nearer).

    Attributes:
        inverse_depth: `N H W` float32 on the host.
        encoded: RGB latents of the frames it was predicted from (lets refinement skip
            re-encoding), or None.
        spread: `N H W` float32, per pixel the standard deviation of the co-aligned
            predictions whose mean the depth is, in the same units as ``inverse_depth``
            (large = the snippets disagree: trust the depth less), or None when not computed.
        clip: where the frames came from (frame numbers, rate, pixel aspect), or None.
    """

    inverse_depth: Tensor
    encoded: EncodedFrames | None = None
    spread: Tensor | None = None
    clip: ClipInfo | None = None

    @property
    def num_frames(self) -> int:
        return int(self.inverse_depth.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        return (int(self.inverse_depth.shape[-2]), int(self.inverse_depth.shape[-1]))
