"""Presets and dilation parsing."""

import dataclasses

import pytest

from rollingdepth_core.errors import InvalidSettings
from rollingdepth_core.presets import PRESETS, Preset, check_dilations, get_preset, parse_dilations


def test_reference_presets():
    assert PRESETS["fast"] == Preset(768, (1, 25), "fp16", 0)
    assert PRESETS["fast1024"] == Preset(1024, (1, 25), "fp16", 0)
    assert PRESETS["full"] == Preset(1024, (1, 10, 25), "fp16", 10)
    assert PRESETS["paper"] == Preset(768, (1, 10, 25), "fp32", 10, cap_dilation=False)
    assert all(p.refine_start_dilation == 6 and p.snippet_length == 3 for p in PRESETS.values())


def test_presets_are_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        PRESETS["fast"].refine_steps = 3
    changed = dataclasses.replace(PRESETS["fast"], refine_steps=4)
    assert changed.refine_steps == 4 and PRESETS["fast"].refine_steps == 0


def test_preset_table_is_read_only():
    """issue 8: `PRESETS` was a plain dict; one caller could change every later run's preset."""
    with pytest.raises(TypeError):
        PRESETS["fast"] = dataclasses.replace(PRESETS["fast"], refine_steps=4)
    with pytest.raises(TypeError):
        del PRESETS["paper"]
    assert list(PRESETS) == ["fast", "fast1024", "full", "paper"] and PRESETS["fast"].refine_steps == 0


def test_get_preset():
    assert get_preset("full") is PRESETS["full"]
    with pytest.raises(InvalidSettings, match="fast, fast1024, full, paper"):
        get_preset("slow")


@pytest.mark.parametrize("text, expected", [("1,10,25", (1, 10, 25)), (" 1, 25 ", (1, 25)),
                                            ("1 10", (1, 10)), ([1, 3], (1, 3))])
def test_parse_dilations(text, expected):
    assert parse_dilations(text) == expected


@pytest.mark.parametrize("text, message", [("1,a", "whole numbers"), ("10,25", "include 1"),
                                           ("", "empty"), ("1,0", ">= 1"), ("1,5,5", "repeated")])
def test_parse_dilations_bad(text, message):
    with pytest.raises(InvalidSettings, match=message):
        parse_dilations(text)


def test_check_dilations_message_suggests_fix():
    with pytest.raises(InvalidSettings, match=r"e\.g\. \(1, 10, 25\)"):
        check_dilations((10, 25))
