"""Image sequences as lazily read frame sources (files written here with OpenImageIO)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import PyOpenColorIO as ocio
import pytest
import torch

from rollingdepth_core.errors import InvalidInput, InvalidSettings
from rollingdepth_core.hooks import Hooks
from rollingdepth_core.io import image_files, plates
from rollingdepth_core.io.plates import ImageSequenceSource
from rollingdepth_core.io.sources import FrameRange, FrameSource, as_source, clip_info


@pytest.fixture
def exr_plate(tmp_path, make_image, plate_pixels):
    """plate.0997.exr .. plate.1003.exr, half float, scene-linear values up to ~3."""
    folder = tmp_path / "plate"
    folder.mkdir()
    for n in range(997, 1004):
        make_image(folder / f"plate.{n:04d}.exr", plate_pixels(n) * 3.0, "half")
    return folder


def test_exr_sequence_is_a_frame_source_with_frame_numbers(exr_plate, monkeypatch):
    monkeypatch.delenv("OCIO", raising=False)
    source = ImageSequenceSource(exr_plate / "plate.####.exr")
    assert isinstance(source, FrameSource)
    assert source.num_frames == 7 and source.input_size == (12, 16)
    assert source.frame_numbers == tuple(range(997, 1004))
    clip = source.clip
    assert clip.name == "plate" and clip.padding == 4 and clip.frame_rate == Fraction(24)
    assert "Linear Rec.709" in clip.colour and clip.display_window == (0, 0, 16, 12)
    part = FrameRange(source, 2, 3)
    assert clip_info(part).frame_numbers == (999, 1000, 1001)


def test_frames_equal_ocio_applied_directly_to_the_stored_values(exr_plate, monkeypatch, plate_pixels):
    monkeypatch.delenv("OCIO", raising=False)
    source = ImageSequenceSource(exr_plate / "plate.%04d.exr", "999-1001", colour_space="ACEScg")
    stored = (plate_pixels(1000) * 3.0).astype(np.float16).astype(np.float32)
    config = ocio.Config.CreateFromFile("ocio://studio-config-latest")
    processor = config.getProcessor(ocio.DisplayViewTransform(
        src="ACEScg", display="sRGB - Display", view="ACES 2.0 - SDR 100 nits (Rec.709)"))
    expected = stored.copy()
    processor.getDefaultCPUProcessor().applyRGB(expected)
    frames = source.read(0, 3)  # b 3 H W in -1..1
    assert frames.shape == (3, 3, 12, 16) and frames.dtype == torch.float32
    got = (frames[1].permute(1, 2, 0).numpy() + 1) / 2
    np.testing.assert_allclose(got, np.clip(expected, 0, 1), atol=1e-6)
    np.testing.assert_allclose(source.read_images(1, 2)[0].numpy(), np.clip(expected, 0, 1), atol=1e-7)


def test_sixteen_bit_tiff_precision_reaches_the_frames(tmp_path, make_image):
    codes = (np.arange(12 * 16 * 3).reshape(12, 16, 3) * 977) % 65536
    for n in (1, 2):
        make_image(tmp_path / f"f_{n:02d}.tif", codes / 65535.0, "uint16")
    source = ImageSequenceSource(tmp_path / "f_##.tif")
    assert source.colour.source == "sRGB (as stored)"
    frames = source.read(0, 1)
    expected = torch.from_numpy((codes / 65535.0).astype(np.float32)).permute(2, 0, 1) * 2 - 1
    torch.testing.assert_close(frames[0], expected, atol=2.5e-7, rtol=0)  # 1 float32 step
    assert len(torch.unique(frames)) > 256  # more than 8 bits survive


def test_dpx_sequence_reads_ten_bit_codes(tmp_path, make_image):
    codes = (np.arange(12 * 16 * 3).reshape(12, 16, 3) * 13) % 1024
    for n in range(3):
        make_image(tmp_path / f"scan.{n + 86400:07d}.dpx", codes / 1023.0, "uint16", bits=10)
    source = ImageSequenceSource(tmp_path / "scan.@@@@@@@.dpx")
    assert source.frame_numbers == (86400, 86401, 86402)
    images = source.read_images(0, 1)
    np.testing.assert_array_equal(np.round(images[0].numpy() * 1023), codes)


def test_reading_is_lazy_one_file_per_frame_read(exr_plate, monkeypatch):
    monkeypatch.delenv("OCIO", raising=False)
    source = ImageSequenceSource(exr_plate / "plate.####.exr")
    opened = []
    real = image_files.read_rgb
    def counting(header, window):
        opened.append(header.path.name)
        return real(header, window)

    monkeypatch.setattr(plates, "read_rgb", counting)
    source.read(2, 4, (6, 8))
    assert opened == ["plate.0999.exr", "plate.1000.exr"]


def test_up_front_checks_name_the_bad_frames(tmp_path, make_image, plate_pixels):
    for n in range(1, 5):
        make_image(tmp_path / f"mix.{n:04d}.exr", plate_pixels(n, 12 if n != 3 else 10), "half")
    with pytest.raises(InvalidInput, match=r"differ in size.*frame 3 is 16x10"):
        ImageSequenceSource(tmp_path / "mix.####.exr")
    make_image(tmp_path / "ok.0001.exr", plate_pixels(1), "half")
    (tmp_path / "ok.0002.exr").write_text("a text file with an image name")
    with pytest.raises(InvalidInput, match=r"Could not read .*ok.0002.exr"):
        ImageSequenceSource(tmp_path / "ok.####.exr")
    for n in (1, 2, 4):
        make_image(tmp_path / f"gap.{n:04d}.exr", plate_pixels(n), "half")
    with pytest.raises(InvalidInput, match=r"missing 1 of the frames 1-4: 3"):
        ImageSequenceSource(tmp_path / "gap.####.exr")
    make_image(tmp_path / "kind.0001.exr", plate_pixels(1), "half")
    make_image(tmp_path / "kind.0002.exr", plate_pixels(2), "uint")  # 32-bit integer EXR
    with pytest.raises(InvalidInput, match="mixes float and integer"):
        ImageSequenceSource(tmp_path / "kind.####.exr")


def test_varying_data_windows_are_fine_in_display_mode_only(tmp_path, make_image, plate_pixels):
    for n, origin in ((1, (0, 0)), (2, (4, 2))):
        make_image(tmp_path / f"cg.{n}.exr", plate_pixels(n, 6, 8), "float", data_window=origin,
                   display_window=(0, 0, 16, 12))
    source = ImageSequenceSource(tmp_path / "cg.#.exr")
    assert source.input_size == (12, 16)
    second = source.read_images(1, 2)[0]
    assert float(second[:2].abs().sum()) == 0.0 and float(second[2:8, 4:12].abs().sum()) > 0
    with pytest.raises(InvalidInput, match="same data window"):
        ImageSequenceSource(tmp_path / "cg.#.exr", window="data")


def test_anamorphic_plate_is_desqueezed_for_the_model(tmp_path, make_image, plate_pixels):
    make_image(tmp_path / "ana.0001.exr", plate_pixels(1, 12, 16), "half", PixelAspectRatio=2.0)
    source = ImageSequenceSource(tmp_path / "ana.####.exr")
    assert source.input_size == (12, 32) and source.clip.stored_size == (12, 16)
    assert source.read(0, 1).shape == (1, 3, 12, 32)
    assert source.read_images(0, 1).shape == (1, 12, 16, 3)


def test_non_finite_pixels_read_as_zero_with_one_warning(
    tmp_path, make_image, plate_pixels, caplog, monkeypatch
):
    monkeypatch.delenv("OCIO", raising=False)
    for n in (1, 2):
        pixels = plate_pixels(n)
        pixels[0, 0, 0] = np.nan
        pixels[1, 1, 1] = np.inf
        make_image(tmp_path / f"nan.{n}.exr", pixels, "float")
    source = ImageSequenceSource(tmp_path / "nan.#.exr")
    with caplog.at_level("WARNING"):
        frames = source.read(0, 2)
    assert torch.isfinite(frames).all() and source.non_finite == 4
    assert sum("NaN or infinite" in r.message for r in caplog.records) == 1


def test_settings_are_checked_before_reading(tmp_path, exr_plate):
    with pytest.raises(InvalidSettings, match="window must be"):
        ImageSequenceSource(exr_plate / "plate.####.exr", window="full")
    with pytest.raises(InvalidSettings, match="not in the OpenColorIO config"):
        ImageSequenceSource(exr_plate / "plate.####.exr", colour_space="Kodak 5219")
    with pytest.raises(InvalidSettings, match="frame rate must be > 0"):
        ImageSequenceSource(exr_plate / "plate.####.exr", frame_rate=0)


def test_header_scan_reports_progress_and_can_be_cancelled(exr_plate):
    seen = []
    ImageSequenceSource(exr_plate / "plate.####.exr", hooks=Hooks(progress=lambda d, t: seen.append((d, t))))
    assert seen[-1] == (7, 7)

    def stop():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ImageSequenceSource(exr_plate / "plate.####.exr", hooks=Hooks(check_cancel=stop))


def test_frame_rate_argument_and_as_source(exr_plate, monkeypatch):
    monkeypatch.delenv("OCIO", raising=False)
    assert ImageSequenceSource(exr_plate, frame_rate=23.976).frame_rate == Fraction(24000, 1001)
    source = as_source(str(exr_plate / "plate.####.exr"))
    assert isinstance(source, ImageSequenceSource) and source.num_frames == 7
    assert as_source(exr_plate).frame_numbers[0] == 997
    assert source.fingerprint() == as_source(exr_plate / "plate.####.exr").fingerprint()
