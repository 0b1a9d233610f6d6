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
