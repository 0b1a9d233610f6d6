"""The shared settings checks (issue 9): one check per setting, worded for each interface."""

import dataclasses

import pytest
import torch

from rollingdepth_core import PRESETS, InvalidInput, InvalidSettings, estimate_depth
from rollingdepth_core.validation import SETTINGS, check_preset, check_settings
from rollingdepth_core.wording import API, Wording

CLI = Wording("cli", {"refine_steps": "--refine-steps", "snippet_length": "--snippet-length",
                      "processing_resolution": "-r/--resolution", "device": "--device"})
NODE = Wording("node", {"refine_steps": "num_steps"})


@pytest.mark.parametrize("setting, value, message", [
    ("refine_steps", -1,
     "refine_steps must be a whole number from 0 to 500 (0 turns refinement off); got -1."),
    ("refine_steps", 2.5, "refine_steps must be a whole number from 0 to 500"),
    ("snippet_length", 0, "snippet_length must be a whole number from 1 to 16"),
    ("processing_resolution", 100000, "processing_resolution must be a whole number from 0 to 4096"),
    ("processing_resolution", True, "got True"),
    ("dilations", (1.5,), "dilations must be whole numbers, e.g. (1, 10, 25)"),
    ("dilations", "1,x", "dilations must be whole numbers separated by commas"),
    ("dilations", (5, 10), "must include 1"),
    ("dtype", "fp8", "dtype must be one of auto, fp32, fp16, bf16; got 'fp8'."),
    ("cap_dilation", "yes", "cap_dilation must be True or False"),
    ("seed", -3, "seed must be a whole number from 0 to"),
    ("coalign_method", "magic", "coalign_method must be one of fast, reference, robust"),
    ("snippets_per_batch", 0, "snippets_per_batch must be a whole number >= 1 or 'auto'"),
    ("learning_rate", 0.0, "learning_rate must be a number > 0.0"),
    ("shift_reg_weight", float("nan"), "shift_reg_weight must be a number >= 0.0"),
    ("colormap", "rainbow", "unknown colour map 'rainbow'"),
    ("outputs", "npz,gif", "outputs must be a comma-separated subset of npz,png16,video,exr"),
    ("existing", "replace", "existing must be one of refuse, overwrite, new_take"),
    ("fps", -1, "fps must be a number > 0.0"),
    ("storage_dir", 3, "storage_dir must be a folder path or None"),
])
def test_each_bad_value_is_named_with_what_was_expected(setting, value, message):
    with pytest.raises(InvalidSettings) as caught:
        check_settings({setting: value})
    assert message in str(caught.value)


def test_messages_use_the_interface_names():
    with pytest.raises(InvalidSettings, match=r"^--refine-steps must be a whole number from 0 to 500"):
        check_settings({"refine_steps": -1}, CLI)
    with pytest.raises(InvalidSettings, match=r"^num_steps must be"):
        check_settings({"refine_steps": -1}, NODE)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_fix_is_worded_for_the_interface():
    # issue 9: load_model(device="cuda") without a GPU told Python users to "Use --device cpu"
    with pytest.raises(InvalidSettings, match=r"Use device='cpu', or install"):
        check_settings({"device": "cuda"}, API)
    with pytest.raises(InvalidSettings, match=r"Use --device cpu, or install"):
        check_settings({"device": "cuda"}, CLI)


def test_good_values_come_back_normalised():
    checked = check_settings({"dilations": "1, 10,25", "refine_steps": 0, "colormap": "Greys_r",
                              "fps": 12, "low_percentile": 2, "high_percentile": 98.0})
    assert checked == {"dilations": (1, 10, 25), "refine_steps": 0, "colormap": ("Greys_r",), "fps": 12.0,
                       "low_percentile": 2.0, "high_percentile": 98.0}
    with pytest.raises(InvalidSettings, match="low_percentile must be below high_percentile"):
        check_settings({"low_percentile": 50, "high_percentile": 50})


def test_check_preset_accepts_names_and_checks_every_field():
    assert check_preset("full") == PRESETS["full"]
    with pytest.raises(InvalidSettings, match="Unknown preset 'fastest'"):
        check_preset("fastest")
    with pytest.raises(InvalidSettings, match="must be a Preset .* got dict"):
        check_preset({"processing_resolution": 768})
    with pytest.raises(InvalidSettings, match="refine_steps must be a whole number from 0"):
        check_preset(dataclasses.replace(PRESETS["fast"], refine_steps=-1))
    assert set(SETTINGS) >= {f.name for f in dataclasses.fields(PRESETS["fast"])}


def test_estimate_depth_checks_everything_before_encoding(tiny_model, monkeypatch, tmp_path):
    from rollingdepth_core.stages import encode

    def never(*args, **kwargs):
        raise AssertionError("encoding started before the arguments were checked")

    monkeypatch.setattr("rollingdepth_core.pipeline.encode_frames", never)
    frames = torch.zeros(4, 3, 16, 16)
    bad_calls = [
        (dict(settings=dataclasses.replace(PRESETS["fast"], snippet_length=0)), "snippet_length"),
        (dict(settings=dataclasses.replace(PRESETS["fast"], refine_steps=-1)), "refine_steps"),
        (dict(settings="fastest"), "Unknown preset"),
        (dict(seed=-1), "seed"),
        (dict(coalign_method="magic"), "coalign_method"),
        (dict(coalign_settings={"num_iterations": 3}), "coalign_settings must be a CoalignSettings"),
        (dict(snippets_per_batch=0), "snippets_per_batch"),
        (dict(noise=torch.zeros(1, 4, 3, 3)), "noise must have shape"),
        # a storage_dir at a file failed with FileExistsError after every frame was encoded
        (dict(storage_dir=tmp_path / "taken"), f"storage_dir {tmp_path / 'taken'} is a file. Choose a"),
    ]
    (tmp_path / "taken").write_text("x")
    for changes, message in bad_calls:
        kwargs = {"settings": PRESETS["fast"], **changes}
        with pytest.raises((InvalidSettings, InvalidInput), match=message):
            estimate_depth(tiny_model, frames, **kwargs)
    assert encode.encode_frames is not never  # only the pipeline's reference was replaced


def test_estimate_depth_accepts_a_preset_name(tiny_model, monkeypatch):
    # issue 9: estimate_depth(model, frames, "fast") raised AttributeError
    seen = {}

    class Reached(Exception):
        pass

    def encode(model, source, processing_resolution, *args):
        seen["resolution"] = processing_resolution
        raise Reached

    monkeypatch.setattr("rollingdepth_core.pipeline.encode_frames", encode)
    for name in ("fast", "full"):
        with pytest.raises(Reached):
            estimate_depth(tiny_model, torch.zeros(3, 3, 16, 24), name)
        assert seen["resolution"] == PRESETS[name].processing_resolution


@pytest.mark.parametrize("call, error, message", [
    # issue 9: plan_snippets(10, (1.5,)) silently used 1; "1,10" raised a raw ValueError
    (lambda: __import__("rollingdepth_core").plan_snippets(10, (1.5,)), InvalidSettings,
     r"dilations must be whole numbers, e.g. \(1, 10, 25\)"),
    (lambda: __import__("rollingdepth_core").plan_snippets(10, 25), InvalidSettings, "got 25"),
    (lambda: __import__("rollingdepth_core").plan_snippets(10, (1, 2), 2.0), InvalidSettings,
     "snippet_length must be a whole number >= 1; got 2.0"),
    # issue 9: coalign_depth(tensor) raised AttributeError
    (lambda: __import__("rollingdepth_core").coalign_depth(torch.zeros(3, 3, 4, 4)), InvalidInput,
     r"snippets must be SnippetDepths \(from denoise_snippets\); got Tensor"),
])
def test_wrong_types_get_clear_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_plan_snippets_takes_a_dilation_string():
    from rollingdepth_core import plan_snippets

    from_text, from_tuple = plan_snippets(40, "1,10"), plan_snippets(40, (1, 10))
    assert [g.dilation for g in from_text.groups] == [1, 10]
    for a, b in zip(from_text.groups, from_tuple.groups, strict=True):
        assert torch.equal(a.indices, b.indices)
