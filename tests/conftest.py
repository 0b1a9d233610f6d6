"""Shared fixtures: the golden reference data and the tiny model in the real layout.

The golden data lives in ``../shared/golden`` beside the checkout. Also looked for: the
environment variable ROLLINGDEPTH_GOLDEN, ``shared/golden`` in any folder above the checkout,
and this workplace's ``/work/shared/golden`` (where CI's clean clone may live elsewhere).
Tests that need it fail, not skip, without it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
GOLDEN_CANDIDATES = (
    os.environ.get("ROLLINGDEPTH_GOLDEN", ""),
    *(str(folder / "shared" / "golden") for folder in (ROOT, *ROOT.parents)),
    "/work/shared/golden",
)

torch.set_num_threads(min(2, torch.get_num_threads()))


def find_golden() -> Path:
    for candidate in GOLDEN_CANDIDATES:
        if candidate and (Path(candidate) / "tiny_v1" / "model" / "model_index.json").is_file():
            return Path(candidate)
    pytest.fail(
        "Golden data not found: put shared/golden beside the checkout or set ROLLINGDEPTH_GOLDEN "
        f"(looked in {[c for c in GOLDEN_CANDIDATES if c]})."
    )


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    return find_golden()


@pytest.fixture(scope="session")
def tiny_model_dir(golden_dir: Path) -> Path:
    """The tiny random checkpoint in the published folder layout (read-only)."""
    return golden_dir / "tiny_v1" / "model"


@pytest.fixture
def tiny_model_copy(tiny_model_dir: Path, tmp_path: Path) -> Path:
    """A writable copy of the tiny checkpoint (for tests that break it)."""
    target = tmp_path / "rollingdepth-tiny"
    shutil.copytree(tiny_model_dir, target)
    return target


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir: Path):
    """The tiny checkpoint loaded in fp32 on the CPU (shared: do not modify)."""
    from rollingdepth_core import load_model

    return load_model(tiny_model_dir, device="cpu", dtype="fp32")


@pytest.fixture(scope="session")
def case_a(golden_dir: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the reference run golden/tiny_v1/case_a."""
    from safetensors.torch import load_file

    return load_file(golden_dir / "tiny_v1" / "case_a.safetensors")


@pytest.fixture(scope="session")
def align_small(golden_dir: Path) -> dict[str, torch.Tensor]:
    """Synthetic snippets with ground truth and the reference aligner's result."""
    from safetensors.torch import load_file

    return load_file(golden_dir / "align_small" / "align_small.safetensors")


# --- the node pack, loaded the way ComfyUI loads it (issue 3) --------------------------------
# ComfyUI imports the checkout folder as a package from its __init__.py, so the nodes' relative
# imports work. Node tests import `rollingdepth_pack.nodes...` and use only
# `rollingdepth_pack.rollingdepth_core` objects (never mixed with plain `rollingdepth_core`).


def load_pack():
    import importlib.util
    import sys

    if "rollingdepth_pack" in sys.modules:
        return sys.modules["rollingdepth_pack"]
    spec = importlib.util.spec_from_file_location(
        "rollingdepth_pack", ROOT / "__init__.py", submodule_search_locations=[str(ROOT)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["rollingdepth_pack"] = module
    spec.loader.exec_module(module)
    return module


load_pack()


@pytest.fixture
def pack_folders(tmp_path, tiny_model_dir, monkeypatch):
    """The bridge's fallback folders pointed at a temp models folder (holding the tiny
    checkpoint under the default name) and a temp output folder."""
    from rollingdepth_pack.nodes import comfy_bridge

    models = tmp_path / "models" / "rollingdepth"
    models.mkdir(parents=True)
    (models / comfy_bridge.DEFAULT_MODEL_NAME).symlink_to(tiny_model_dir, target_is_directory=True)
    output = tmp_path / "output"
    monkeypatch.setattr(comfy_bridge, "FALLBACK_MODEL_FOLDERS", [models])
    monkeypatch.setattr(comfy_bridge, "FALLBACK_OUTPUT_FOLDER", output)
    return {"models": models, "output": output}


@pytest.fixture(scope="session")
def pack_model(tiny_model_dir):
    """The tiny checkpoint as a ROLLINGDEPTH_MODEL (fp32, CPU), loaded through the pack's core."""
    from rollingdepth_pack.nodes import comfy_bridge
    from rollingdepth_pack.rollingdepth_core import load_model

    return comfy_bridge.manage(load_model(tiny_model_dir, device="cpu", dtype="fp32"))


@pytest.fixture(scope="session")
def pack_images():
    """A ComfyUI IMAGE batch `N H W 3` in 0..1: 9 frames of 40 x 64, smooth and moving."""
    n, h, w = 9, 40, 64
    t = torch.linspace(0, 1, n)[:, None, None, None]
    y = torch.linspace(0, 1, h)[None, :, None, None]
    x = torch.linspace(0, 1, w)[None, None, :, None]
    phase = torch.tensor([0.0, 2.0, 4.0])
    return (0.5 + 0.45 * torch.sin(6 * x + 3 * y + 2 * t + phase)).float()


# --- image files for the plate tests (issue 10), written with OpenImageIO ------------------------


def write_image(
    path: Path, pixels: np.ndarray, pixel_type: str = "half", channels: tuple[str, ...] | None = None,
    data_window: tuple[int, int] | None = None, display_window: tuple[int, int, int, int] | None = None,
    bits: int = 0, **attributes,
) -> Path:
    """Write `h w c` ``pixels`` (float 0..1 or any float for EXR) to ``path`` with OpenImageIO."""
    import OpenImageIO as oiio

    pixels = np.asarray(pixels, dtype=np.float32)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    height, width, count = pixels.shape
    spec = oiio.ImageSpec(width, height, count, pixel_type)
    if channels is not None:
        spec.channelnames = tuple(channels)
    if data_window is not None:
        spec.x, spec.y = data_window
    if display_window is not None:
        spec.full_x, spec.full_y, spec.full_width, spec.full_height = display_window
    if bits:
        spec.attribute("oiio:BitsPerSample", bits)
    for name, value in attributes.items():
        spec.attribute(name.replace("__", ":"), value)
    out = oiio.ImageOutput.create(str(path))
    assert out is not None, oiio.geterror()
    assert out.open(str(path), spec), out.geterror()
    assert out.write_image(pixels), out.geterror()
    out.close()
    return path


@pytest.fixture
def make_image():
    return write_image


@pytest.fixture
def plate_pixels():
    """`pixels(frame, h, w)`: smooth float RGB in 0..1 that changes from frame to frame."""

    def pixels(frame: int, height: int = 12, width: int = 16, channels: int = 3) -> np.ndarray:
        y = np.linspace(0, 1, height)[:, None, None]
        x = np.linspace(0, 1, width)[None, :, None]
        c = np.arange(channels)[None, None, :]
        return (0.5 + 0.4 * np.sin(3 * x + 2 * y + 0.3 * frame + c)).astype(np.float32)

    return pixels
