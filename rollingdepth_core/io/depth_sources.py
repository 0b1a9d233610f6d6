"""Depth from other sources (another model, a depth video on disk) as RollingDepth inverse depth.

RollingDepth works with affine-invariant inverse depth (larger = nearer). Other tools write
either that (disparity, "near = bright") or depth ("near = dark"); this module turns both into
the former, so any depth video can be refined or saved like our own.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import InvalidInput, InvalidSettings

DEPTH_KINDS = ("inverse_depth", "depth")


def to_inverse_depth(values: Tensor, kind: str = "inverse_depth", near_limit: float = 0.01) -> Tensor:
    """Inverse depth `N H W` from depth values of another source.

    Args:
        values: `N H W`, finite; "depth" values must be >= 0.
        kind: "inverse_depth" (larger = nearer, returned as float32 unchanged) or "depth"
            (larger = farther).
        near_limit: for "depth", the nearest depth kept, as a fraction of the clip's largest
            depth; nearer values (and 0) are clipped to it before taking `1 / depth`, so the
            result spans at most a factor `1 / near_limit`.

    Returns:
        `N H W` float32 inverse depth (a new tensor).
    """
    if kind not in DEPTH_KINDS:
        raise InvalidSettings(f"Unknown depth kind {kind!r}. Choose one of {', '.join(DEPTH_KINDS)}.")
    if values.ndim != 3 or values.shape[0] == 0:
        raise InvalidInput(f"depth values must be `N H W` with N >= 1; got {tuple(values.shape)}.")
    if not bool(torch.isfinite(values).all()):
        raise InvalidInput("depth values contain NaN or infinite values; fix the source first.")
    values = values.float()
    if kind == "inverse_depth":
        return values.clone()
    if not 0.0 < near_limit <= 1.0:
        raise InvalidSettings(f"near_limit must be in (0, 1]; got {near_limit}.")
    if float(values.min()) < 0:
        raise InvalidInput(
            f"depth values must be >= 0 (smallest is {float(values.min()):.4g}). If the source is "
            "inverse depth or disparity, choose 'inverse_depth' instead."
        )
    farthest = float(values.max())
    if farthest == 0.0:
        raise InvalidInput("depth values are all 0; the source holds no depth.")
    return 1.0 / (values / farthest).clamp(min=near_limit)


DEPTH_CHANNELS = ("depth.Z", "Z", "depth.z", "Y", "R")  # tried in order in reference depth images


class DepthMapFiles:
    """Metric depth maps on disk, read one at a time: an image sequence or a NumPy file.

    Indexable like an `M H W` array (``maps[i]`` is one `H W` float32 tensor), so a fit to a
    long reference video never holds it whole.

    Args:
        path: an image sequence (``lidar.####.exr``, a folder, one image: the first of the
            channels ``depth.Z``, ``Z``, ``Y``, ``R`` found, or ``channel``), or a ``.npy`` /
            ``.npz`` file with an `M H W` (or `H W`) array (memory-mapped where possible).
        channel: the channel holding Z in image files (default: found as above).

    Attributes:
        frame_numbers: the frame number of each map (sequences: from the file names; NumPy:
            0 .. M - 1, i.e. clip indices).
    """

    def __init__(self, path, channel: str | None = None):
        from pathlib import Path

        import numpy as np

        self.path = Path(path)
        self.channel = channel
        suffix = self.path.suffix.lower()
        if suffix in (".npy", ".npz"):
            if not self.path.is_file():
                raise InvalidInput(f"Reference depth file {self.path} does not exist.")
            if suffix == ".npy":
                array = np.load(self.path, mmap_mode="r")
            else:
                with np.load(self.path) as archive:
                    key = next((k for k in ("z", "depth", "Z") if k in archive.files), archive.files[0])
                    array = archive[key]
            if array.ndim == 2:
                array = array[None]
            if array.ndim != 3:
                raise InvalidInput(f"{self.path} holds an array of shape {array.shape}; expected `M H W`.")
            self._array, self._paths = array, None
            self.frame_numbers = tuple(range(array.shape[0]))
            self.shape = tuple(int(v) for v in array.shape)
            return
        from .exr import read_exr_channel
        from .image_files import channel_names
        from .sequences import find_sequence

        sequence = find_sequence(self.path)
        names = channel_names(sequence.paths[0])
        self.channel = channel or next((c for c in DEPTH_CHANNELS if c in names), None)
        if self.channel is None or self.channel not in names:
            wanted = ", ".join([channel] if channel else DEPTH_CHANNELS)
            raise InvalidInput(
                f"{sequence.paths[0]} has no depth channel ({wanted}); it has {', '.join(names)}."
            )
        first = read_exr_channel(sequence.paths[0], self.channel)
        self._array, self._paths = None, sequence.paths
        self.frame_numbers = sequence.frame_numbers
        self.shape = (len(sequence.paths), *first.shape)
        self._read = read_exr_channel

    @property
    def ndim(self) -> int:
        return 3

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: int) -> Tensor:
        import numpy as np

        if self._paths is None:
            return torch.from_numpy(np.array(self._array[index], dtype=np.float32))  # a copy: one map
        values = self._read(self._paths[index], self.channel)
        if values.shape != self.shape[1:]:
            raise InvalidInput(f"{self._paths[index]} is {values.shape[::-1]}, unlike the first map.")
        return torch.from_numpy(values)

    def subset(self, indices: list[int]) -> list[Tensor]:
        """The maps at ``indices``, read lazily (an indexable list-like of `H W` tensors)."""
        return _Subset(self, list(indices))

    def clip_frames(self, clip_numbers: tuple[int, ...] | None) -> tuple[list[int], list[int]]:
        """`(map indices, clip frame indices)` of the maps that belong to frames of the clip.

        Sequences are matched by frame number, NumPy maps by position.

        Raises:
            InvalidInput: no map belongs to a frame of the clip.
        """
        if self._paths is None or clip_numbers is None:
            count = min(len(self), len(clip_numbers) if clip_numbers is not None else len(self))
            return list(range(count)), list(range(count))
        index_of = {n: i for i, n in enumerate(clip_numbers)}
        pairs = [(m, index_of[n]) for m, n in enumerate(self.frame_numbers) if n in index_of]
        if not pairs:
            raise InvalidInput(
                f"None of the reference depth frames ({self.frame_numbers[0]}-{self.frame_numbers[-1]}) "
                f"are frames of the clip ({clip_numbers[0]}-{clip_numbers[-1]})."
            )
        return [m for m, _ in pairs], [c for _, c in pairs]


class _Subset:
    """Some maps of a `DepthMapFiles`, still read one at a time."""

    def __init__(self, maps: DepthMapFiles, indices: list[int]):
        self.maps, self.indices = maps, indices
        self.shape = (len(indices), *maps.shape[1:])
        self.ndim = 3

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Tensor:
        return self.maps[self.indices[index]]
