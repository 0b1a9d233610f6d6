"""Frame-major slots: each frame's predictions side by side, linear in clip length."""

from __future__ import annotations

import pytest
import torch

from rollingdepth_core.coalign.slots import frame_slots, slot_table
from rollingdepth_core.errors import InvalidInput
from rollingdepth_core.stages.snippets import plan_snippets


def plan_values(num_frames: int = 120, num_pixels: int = 5):
    plan = plan_snippets(num_frames, (1, 10, 25), 3)
    indices = tuple(g.indices for g in plan.groups)
    # value = frame * 100 + group * 10 + position: easy to check where it lands
    values = tuple(
        (g.indices * 100 + number * 10 + torch.arange(3))[..., None].float().expand(-1, -1, num_pixels)
        for number, g in enumerate(plan.groups)
    )
    return plan, indices, values


def test_every_prediction_lands_in_its_frame():
    plan, indices, values = plan_values()
    slots = frame_slots(values, indices, 120)
    assert slots.values.shape == (120, 9, 5)
    assert slots.group_sizes == tuple(g.num_snippets for g in plan.groups)
    assert slots.num_snippets == plan.num_snippets
    filled = slots.values[slots.mask][:, 0]
    frames = torch.arange(120)[:, None].expand(120, 9)[slots.mask]
    assert torch.equal(torch.div(filled, 100, rounding_mode="floor"), frames.float())
    assert int(slots.mask.sum()) == 3 * plan.num_snippets
    assert slots.counts.tolist()[:3] == [3, 4, 5]
    assert slots.counts[60] == 9 and slots.counts[119] == 3
    assert bool((slots.values[~slots.mask] == 0).all())


def test_pixel_subset_and_dtype():
    _, indices, values = plan_values(num_pixels=7)
    slots = frame_slots(values, indices, 120, pixels=torch.tensor([0, 3]), dtype=torch.float64)
    assert slots.values.shape == (120, 9, 2) and slots.values.dtype == torch.float64


def test_gather_and_scatter_are_adjoint():
    _, indices, values = plan_values()
    slots = frame_slots(values, indices, 120)
    per_snippet = torch.arange(slots.num_snippets, dtype=torch.float64)
    gathered = slots.gather(per_snippet)
    assert bool((gathered[~slots.mask] == 0).all())
    counts = slots.scatter(torch.ones(120, 9, 1, dtype=torch.float64))[:, 0]
    assert bool((counts == 3).all())  # every snippet has 3 frames


def test_slot_table_lists_each_frames_predictions():
    plan = plan_snippets(120, (1, 10, 25), 3)
    table = slot_table(tuple(g.indices for g in plan.groups), 120)
    predictions = table.predictions(60)
    assert len(predictions) == 9
    for group, local, position in predictions:
        assert int(plan.groups[group].indices[local, position]) == 60
    assert table.counts.tolist()[:3] == [3, 4, 5]


def test_uncovered_or_out_of_range_frames_raise():
    with pytest.raises(InvalidInput, match="in no snippet"):
        slot_table((torch.tensor([[0, 1, 2]]),), 5)
    with pytest.raises(InvalidInput, match="leave the clip"):
        slot_table((torch.tensor([[0, 1, 9]]),), 5)
    with pytest.raises(InvalidInput, match="twice"):
        slot_table((torch.tensor([[0, 1], [0, 2]]),), 3)
    with pytest.raises(InvalidInput, match="do not match"):
        frame_slots((torch.zeros(2, 3, 4),), (torch.zeros(3, 3, dtype=torch.long),), 5)
