"""Plate nodes without ComfyUI: Load Plate Sequence (a lazy VIDEO), Convert Depth, Co-align's spread."""

from __future__ import annotations

import os
from fractions import Fraction

import numpy as np
import pytest
import torch
from rollingdepth_pack.nodes import NODE_CLASS_MAPPINGS as NODES
from rollingdepth_pack.nodes import comfy_bridge
from rollingdepth_pack.rollingdepth_core.coalign.methods import coalign_depth
from rollingdepth_pack.rollingdepth_core.conversion import ConvertedDepth
from rollingdepth_pack.rollingdepth_core.errors import InvalidInput
from rollingdepth_pack.rollingdepth_core.io.plates import ImageSequenceSource
from rollingdepth_pack.rollingdepth_core.stages.denoise import predict_snippets
from rollingdepth_pack.rollingdepth_core.stages.snippets import plan_snippets
from rollingdepth_pack.rollingdepth_core.types import RunBatches

FIRST, COUNT, HEIGHT, WIDTH = 1001, 7, 40, 64


def run(node_id: str, **inputs):
    cls = NODES[node_id]
    with torch.inference_mode():
        out = getattr(cls(), cls.FUNCTION)(**inputs)
    return out["result"] if isinstance(out, dict) else out


LOAD = {"frame_range": "", "colour_space": "auto", "view": "default", "layer": "", "window": "display",
        "frame_rate": 0.0}
CONVERT = {"mode": "planes", "near": 1.0, "far": 50.0, "units": "m", "low_percentile": 1.0,
           "high_percentile": 99.0, "points": "", "points_origin": "top-left", "max_depth": 0.0,
           "reference_scale": 1.0, "output_size": "plate"}


@pytest.fixture
def plate(tmp_path, monkeypatch, make_image, pack_images):
    """shots/plate.1001.exr .. 1007 in a temporary ComfyUI input folder: scene-linear half floats."""
    monkeypatch.delenv("OCIO", raising=False)
    folder = tmp_path / "input" / "shots"
    folder.mkdir(parents=True)
    for i in range(COUNT):
        linear = pack_images[i].numpy() ** 2.2 * 1.5  # some values above 1
        make_image(folder / f"plate.{FIRST + i}.exr", linear, "half")
    monkeypatch.setattr(comfy_bridge, "FALLBACK_INPUT_FOLDER", tmp_path / "input")
    return folder


def test_load_plate_sequence_gives_a_lazy_video(plate):
    video, info = run("RollingDepthLoadPlateSequence", sequence="shots/plate.####.exr", **LOAD)
    source = video.frame_source()
    assert isinstance(source, ImageSequenceSource) and source.frame_numbers == tuple(range(1001, 1008))
    assert "plate.####.exr frames 1001-1007 (7 frames)" in info and "64x40 stored" in info
    assert "'Linear Rec.709 (sRGB)' -> display 'sRGB - Display'" in info
    assert video.get_dimensions() == (64, 40) and video.get_frame_count() == 7
    assert video.get_frame_rate() == Fraction(24) and video.get_duration() == pytest.approx(7 / 24)
    images = video.images()
    assert images.shape == (7, 40, 64, 3) and 0.0 <= float(images.min()) and float(images.max()) <= 1.0
    direct = ImageSequenceSource(plate / "plate.####.exr")
    torch.testing.assert_close(images[3], direct.read_images(3, 4)[0], rtol=0, atol=0)
    absolute, _ = run("RollingDepthLoadPlateSequence", sequence=str(plate / "plate.%04d.exr"),
                      **{**LOAD, "frame_range": "1003-1005", "frame_rate": 23.976})
    assert absolute.frame_source().frame_numbers == (1003, 1004, 1005)
    assert absolute.get_frame_rate() == Fraction(24000, 1001)


def test_load_plate_sequence_checks_before_work(plate):
    cls = NODES["RollingDepthLoadPlateSequence"]
    assert "not in the OpenColorIO config" in cls.VALIDATE_INPUTS(frame_range="", colour_space="nope")
    assert "frame range" in cls.VALIDATE_INPUTS(frame_range="10-a", colour_space="auto")
    assert cls.VALIDATE_INPUTS(frame_range="1001-1003", colour_space="ACEScg") is True
    os.remove(plate / "plate.1004.exr")
    with pytest.raises(InvalidInput, match=r"missing 1 of the frames 1001-1007: 1004"):
        run("RollingDepthLoadPlateSequence", sequence="shots/plate.####.exr", **LOAD)
    first = cls.IS_CHANGED(sequence="shots/plate.####.exr", frame_range="1005-1007")
    assert first == cls.IS_CHANGED(sequence="shots/plate.####.exr", frame_range="1005-1007")
    stat = (plate / "plate.1006.exr").stat()
    os.utime(plate / "plate.1006.exr", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert cls.IS_CHANGED(sequence="shots/plate.####.exr", frame_range="1005-1007") != first


def test_plate_through_the_stage_nodes_to_linear_z(plate, pack_model):
    video, _ = run("RollingDepthLoadPlateSequence", sequence="shots/plate.####.exr", **LOAD)
    plan, _ = run("RollingDepthSampleSnippets", dilations="1,3", snippet_length=3, cap_dilation=True,
                  num_frames=0, video=video)
    assert plan.num_frames == COUNT
    (snippets,) = run("RollingDepthDenoiseSnippets", model=pack_model, video=video, plan=plan,
                      processing_resolution=32, seed=3, snippets_per_batch=4)
    assert snippets.encoded.clip.frame_numbers == tuple(range(1001, 1008))
    depth, _, spread = run("RollingDepthCoalign", snippet_depths=snippets, method="fast", num_iterations=2000,
                           learning_rate=1e-3, depth_term_weight=1.0, scale_reg_weight=0.1,
                           shift_reg_weight=10.0, subsample=10)
    # the same through the core, reading the plate directly
    source = ImageSequenceSource(plate / "plate.####.exr")
    core = predict_snippets(pack_model.model, source, plan_snippets(COUNT, (1, 3), 3), 32, seed=3,
                            batches=RunBatches(snippets=4))
    expected, _ = coalign_depth(core, "fast", spread=True)
    torch.testing.assert_close(depth.inverse_depth, expected.inverse_depth, rtol=0, atol=1e-6)
    torch.testing.assert_close(spread, expected.spread, rtol=0, atol=1e-6)
    assert spread.shape == depth.inverse_depth.shape == (7, 20, 32) and float(spread.min()) >= 0
    assert depth.clip.frame_numbers[0] == 1001
    converted, report = run("RollingDepthConvertDepth", depth=depth, **CONVERT)
    assert isinstance(converted, ConvertedDepth) and converted.kind == "z"
    assert converted.size == (HEIGHT, WIDTH)  # back at the plate's size
    assert float(converted.values.min()) >= 1.0 and float(converted.values.max()) <= 50.0
    assert converted.spread is not None and converted.clip.frame_numbers[-1] == 1007
    assert "linear Z" in report and "64x40" in report


def test_convert_depth_fits_points_given_in_plate_pixels(plate, pack_model):
    video, _ = run("RollingDepthLoadPlateSequence", sequence="shots/plate.####.exr", **LOAD)
    plan, _ = run("RollingDepthSampleSnippets", dilations="1", snippet_length=3, cap_dilation=True,
                  num_frames=0, video=video)
    (snippets,) = run("RollingDepthDenoiseSnippets", model=pack_model, video=video, plan=plan,
                      processing_resolution=32, seed=0, snippets_per_batch=4)
    depth, *_ = run("RollingDepthCoalign", snippet_depths=snippets, method="fast", num_iterations=2000,
                    learning_rate=1e-3, depth_term_weight=1.0, scale_reg_weight=0.1, shift_reg_weight=10.0,
                    subsample=10)
    planes, _ = run("RollingDepthConvertDepth", depth=depth, **{**CONVERT, "low_percentile": 0.0,
                                                                  "high_percentile": 100.0})
    z = planes.values  # a known Z field at plate size: fit points taken from it must give it back
    points = "\n".join(f"{1001 + f} {x} {y} {float(z[f, y, x]):.6f}" for f, x, y in
                       ((0, 5, 5), (2, 60, 30), (4, 30, 12), (6, 10, 38)))
    fit_inputs = {**CONVERT, "mode": "fit", "points": points}
    fitted, report = run("RollingDepthConvertDepth", depth=depth, **fit_inputs)
    assert "fit to 4 points" in report and "median relative Z error" in report
    inside = (z > 1.0) & (z < 50.0)
    torch.testing.assert_close(fitted.values[inside], z[inside], rtol=2e-2, atol=0)
    bad = "1001 5 5 3.0\n1002 10 10 3.0"
    with pytest.raises(InvalidInput, match="fewer than 2 distinct reference depths"):
        run("RollingDepthConvertDepth", depth=depth, **{**CONVERT, "mode": "fit", "points": bad})
    cls = NODES["RollingDepthConvertDepth"]
    assert "0 < near < far" in cls.VALIDATE_INPUTS(mode="planes", near=5.0, far=2.0, low_percentile=1.0,
                                                    high_percentile=99.0, units="m")


def test_video_input_outside_comfyui_is_the_object_itself(plate):
    video, _ = run("RollingDepthLoadPlateSequence", sequence="shots/plate.####.exr", **LOAD)
    assert comfy_bridge.video_input(video) is video
    assert "PlateVideo(" in repr(video) and np.isfinite(video.images().numpy()).all()


def test_depth_to_image_shows_linear_z_nearer_brighter():
    from rollingdepth_pack.rollingdepth_core.types import DepthVideo

    inverse = torch.linspace(0.1, 1.0, 2 * 3 * 4).reshape(2, 3, 4)
    z = ConvertedDepth(1 / inverse, "z", "m", {})
    common = {"colormap": "gray", "low_percentile": 0.0, "high_percentile": 100.0}
    (from_z,) = run("RollingDepthDepthToImage", depth=z, invert=False, **common)
    (from_inverse,) = run("RollingDepthDepthToImage", depth=DepthVideo(inverse), invert=False, **common)
    assert float(from_z[1, 2, 3, 0]) == 1.0 and float(from_z[0, 0, 0, 0]) == 0.0  # nearest pixel brightest
    order = torch.argsort(from_inverse.flatten(), stable=True)
    assert torch.argsort(from_z.flatten(), stable=True).equal(order)
    (flipped,) = run("RollingDepthDepthToImage", depth=z, invert=True, **common)
    assert float(flipped[1, 2, 3, 0]) == 0.0


def test_plate_video_saves_at_its_exact_rate(plate, tmp_path):
    import io

    import av

    video, _ = run("RollingDepthLoadPlateSequence", sequence="shots/plate.####.exr",
                   **{**LOAD, "frame_rate": 23.976})
    path = tmp_path / "plate.mp4"
    comfy_bridge.write_h264(path, video, metadata={"prompt": {"1": "x"}})
    buffer = io.BytesIO()
    comfy_bridge.write_h264(buffer, video)
    for target in (str(path), io.BytesIO(buffer.getvalue())):
        with av.open(target) as container:
            stream = container.streams.video[0]
            assert stream.average_rate == Fraction(24000, 1001)
            assert (stream.width, stream.height) == (64, 40)
            assert sum(1 for _ in container.decode(stream)) == COUNT
    with av.open(str(path)) as container:
        assert container.metadata.get("prompt") == '{"1": "x"}'


def test_save_depth_writes_linear_z_with_the_plates_numbers(plate, pack_model, pack_folders):
    import OpenImageIO as oiio
    from rollingdepth_pack.rollingdepth_core.io.exr import read_exr_channel

    video, _ = run("RollingDepthLoadPlateSequence", sequence="shots/plate.####.exr", **LOAD)
    plan, _ = run("RollingDepthSampleSnippets", dilations="1,3", snippet_length=3, cap_dilation=True,
                  num_frames=0, video=video)
    (snippets,) = run("RollingDepthDenoiseSnippets", model=pack_model, video=video, plan=plan,
                      processing_resolution=32, seed=3, snippets_per_batch=4)
    depth, *_ = run("RollingDepthCoalign", snippet_depths=snippets, method="fast", num_iterations=2000,
                    learning_rate=1e-3, depth_term_weight=1.0, scale_reg_weight=0.1, shift_reg_weight=10.0,
                    subsample=10)
    z, _ = run("RollingDepthConvertDepth", depth=depth, **CONVERT)
    (listing,) = run("RollingDepthSaveDepth", depth=z, filename_prefix="shot/plate_z", save_exr=True,
                     save_png16=False, save_npz=True, exr_channel="Z", exr_pixel_type="half",
                     exr_compression="piz", save_spread=True)
    lines = listing.splitlines()
    assert lines[0] == "shot/plate_z_00001.npz"
    assert lines[1:] == [f"shot/plate_z_00001_exr/plate_z.depth.{n}.exr" for n in range(1001, 1008)]
    path = pack_folders["output"] / lines[3]
    spec = oiio.ImageInput.open(str(path)).spec()
    assert spec.channelnames == ("Z", "spread") and str(spec.format) == "half"
    assert spec.get_string_attribute("compression") == "piz" and (spec.width, spec.height) == (64, 40)
    assert spec.get_string_attribute("rollingdepth:units") == "m"
    np.testing.assert_allclose(read_exr_channel(path, "Z"), z.values[2].numpy(), rtol=1e-3)
    np.testing.assert_allclose(read_exr_channel(path, "spread"), z.spread[2].numpy(), rtol=1e-3, atol=1e-4)
    with np.load(pack_folders["output"] / lines[0]) as data:
        assert list(data["frame_numbers"]) == list(range(1001, 1008)) and data["z"].shape == (7, 40, 64)
    with pytest.raises(InvalidInput, match="no spread"):
        run("RollingDepthSaveDepth", depth=ConvertedDepth(z.values, "z", "m", {}),
            filename_prefix="shot/none", save_exr=True, save_png16=False, save_npz=False, exr_channel="Z",
            exr_pixel_type="half", exr_compression="zip", save_spread=True)
