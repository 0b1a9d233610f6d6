"""Sequence patterns, folders, frame ranges and missing frames (no pixels decoded)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollingdepth_core.errors import InvalidInput, InvalidSettings
from rollingdepth_core.io.sequences import (
    compact_ranges,
    find_sequence,
    is_image_file,
    parse_frame_range,
    pattern_from_text,
)


def touch(folder: Path, names) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"x")


@pytest.mark.parametrize("text, head, tail, padding", [
    ("plate.####.exr", "plate.", ".exr", 4),
    ("plate.%04d.exr", "plate.", ".exr", 4),
    ("plate.@@@@.dpx", "plate.", ".dpx", 4),
    ("shot_%d.png", "shot_", ".png", 0),
    ("a.#.tif", "a.", ".tif", 1),
    ("render_%6d.exr", "render_", ".exr", 6),
])
def test_pattern_from_text_reads_every_padding_style(text, head, tail, padding):
    pattern = pattern_from_text(f"/data/{text}")
    assert (pattern.head, pattern.tail, pattern.padding) == (head, tail, padding)
    assert pattern.folder == Path("/data")


def test_pattern_names_frames_and_refuses_other_paddings():
    pattern = pattern_from_text("plate.####.exr")
    assert pattern.file_name(1001) == "plate.1001.exr"
    assert pattern.file_name(7) == "plate.0007.exr"
    assert pattern.number_of("plate.1001.exr") == 1001
    assert pattern.number_of("plate.10000.exr") == 10000  # past the padding, no leading zero
    assert pattern.number_of("plate.01001.exr") is None  # another padding: another sequence
    assert pattern.number_of("plate.101.exr") is None
    assert pattern.number_of("plate.1001.exr.tmp") is None
    assert pattern.number_of("plate.10a1.exr") is None
    assert pattern.name == "plate" and pattern.display() == "plate.####.exr"


def test_two_frame_fields_are_refused():
    with pytest.raises(InvalidSettings, match="2 frame-number fields"):
        pattern_from_text("plate.####.%04d.exr")


@pytest.mark.parametrize("text, expected", [
    ("1001-1100", (1001, 1100)), ("1001", (1001, 1001)), (" 5 : 9 ", (5, 9)), ("-5--1", (-5, -1)),
    (None, None), ("", None), ((3, 4), (3, 4)),
])
def test_parse_frame_range(text, expected):
    assert parse_frame_range(text) == expected


@pytest.mark.parametrize("text", ["1001-", "a-b", "1100-1001", "1,2"])
def test_bad_frame_ranges_are_refused(text):
    with pytest.raises(InvalidSettings):
        parse_frame_range(text)


def test_compact_ranges():
    assert compact_ranges([1005, 1010, 1011, 1012, 1020]) == "1005, 1010-1012, 1020"
    assert compact_ranges(list(range(0, 40, 2)), limit=3).endswith("and 17 more gaps")


def test_find_sequence_with_odd_frame_numbers_and_range(tmp_path):
    touch(tmp_path, [f"plate.{n:04d}.exr" for n in range(997, 1004)] + ["plate.0999.exr.tmp", "notes.txt"])
    for text in ("plate.####.exr", "plate.%04d.exr", "plate.@@@@.exr"):
        sequence = find_sequence(tmp_path / text)
        assert sequence.frame_numbers == tuple(range(997, 1004))
        assert sequence.paths[0] == tmp_path / "plate.0997.exr"
        assert sequence.name == "plate" and sequence.padding == 4
    part = find_sequence(tmp_path / "plate.####.exr", "999-1001")
    assert part.frame_numbers == (999, 1000, 1001)
    assert [p.name for p in part.paths] == ["plate.0999.exr", "plate.1000.exr", "plate.1001.exr"]


def test_missing_frames_are_reported_by_number_before_anything_is_read(tmp_path):
    numbers = [n for n in range(1001, 1021) if n not in (1005, 1010, 1011, 1012)]
    touch(tmp_path, [f"plate.{n}.exr" for n in numbers])
    with pytest.raises(InvalidInput, match=r"missing 4 of the frames 1001-1020: 1005, 1010-1012"):
        find_sequence(tmp_path / "plate.####.exr")
    with pytest.raises(InvalidInput, match=r"missing 2 of the frames 1015-1022: 1021-1022"):
        find_sequence(tmp_path / "plate.####.exr", "1015-1022")
    assert find_sequence(tmp_path / "plate.####.exr", "1013-1020").num_frames == 8
    with pytest.raises(InvalidInput, match="None of the frames 2000-2001"):
        find_sequence(tmp_path / "plate.####.exr", "2000-2001")


def test_no_match_and_missing_folder(tmp_path):
    with pytest.raises(InvalidInput, match="No frames of"):
        find_sequence(tmp_path / "plate.####.exr")
    with pytest.raises(InvalidInput, match="does not exist"):
        find_sequence(tmp_path / "nowhere" / "plate.####.exr")
    with pytest.raises(InvalidInput, match="does not exist"):
        find_sequence(tmp_path / "plate.1001.exr")


def test_folder_with_one_sequence_finds_its_pattern(tmp_path):
    touch(tmp_path, [f"shot_{n:03d}.png" for n in range(5, 12)] + ["readme.txt"])
    sequence = find_sequence(tmp_path)
    assert sequence.frame_numbers == tuple(range(5, 12))
    assert sequence.pattern.display() == "shot_###.png" and sequence.name == "shot"


def test_folder_with_two_sequences_asks_for_one(tmp_path):
    touch(tmp_path, [f"a.{n:04d}.exr" for n in range(3)] + [f"b.{n:04d}.exr" for n in range(4)])
    with pytest.raises(InvalidInput, match=r"holds 2 image sequences: a.####.exr \(3 frames\); b.####.exr"):
        find_sequence(tmp_path)


def test_folder_of_unnumbered_images_is_sorted_by_name(tmp_path):
    touch(tmp_path, ["b.png", "a.png", "c.jpg"])
    sequence = find_sequence(tmp_path)
    assert [p.name for p in sequence.paths] == ["a.png", "b.png", "c.jpg"]
    assert sequence.frame_numbers == (0, 1, 2) and sequence.pattern is None
    with pytest.raises(InvalidSettings, match="without frame numbers"):
        find_sequence(tmp_path, "1-2")


def test_single_image_file_is_a_one_frame_clip(tmp_path):
    touch(tmp_path, ["still.tif", "movie.mp4"])
    assert find_sequence(tmp_path / "still.tif").paths == (tmp_path / "still.tif",)
    with pytest.raises(InvalidInput, match="not an image file"):
        find_sequence(tmp_path / "movie.mp4")
    with pytest.raises(InvalidSettings, match="needs a sequence pattern"):
        find_sequence(tmp_path / "still.tif", "1-2")


def test_image_suffixes():
    assert is_image_file("a.EXR") and is_image_file("b.dpx") and not is_image_file("c.mp4")
