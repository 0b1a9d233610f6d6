"""Shots of a farm run: folders, globs and shot lists, every problem found before anything runs."""

import contextlib
import json
import logging
import subprocess
import sys

import pytest

from rollingdepth_core.errors import InvalidSettings
from rollingdepth_core.farm.cli import build_parser, main
from rollingdepth_core.farm.shots import ShotListError, collect_shots, shot_options
from rollingdepth_core.presets import PRESETS


def farm_args(*extra):
    return build_parser().parse_args(["SHOTS", "-o", "out", *extra])


@pytest.fixture
def clips(tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"not decoded here")
    (tmp_path / "b.mov").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("ignored")
    plate = tmp_path / "plate"
    plate.mkdir()
    for i in range(3):
        (plate / f"plate.{1001 + i}.png").write_bytes(b"png")
    return tmp_path


def test_a_folder_gives_its_videos_and_image_sequences(clips):
    shots = collect_shots(clips, farm_args("--refine-steps", "2"))
    assert [(s.name, s.path.name) for s in shots] == [("a", "a.mp4"), ("b", "b.mov"), ("plate", "plate")]
    assert all(s.path.is_absolute() and s.options["refine_steps"] == 2 for s in shots)
    assert [s.name for s in collect_shots(str(clips / "*.mp4"), farm_args())] == ["a"]
    assert [s.name for s in collect_shots(clips / "plate", farm_args())] == ["plate"]


def test_a_csv_shot_list_with_ranges_and_per_shot_settings(clips):
    listing = clips / "show.csv"
    listing.write_text("path,name,start,count,refine_steps,dilations,cap_dilation\n"
                       "a.mp4,sh010,5,20,,,\n"
                       "b.mov,,,,4,\"1,9\",false\n")
    first, second = collect_shots(listing, farm_args("--seed", "7"))
    assert (first.name, first.start, first.count, first.options["refine_steps"]) == ("sh010", 5, 20, None)
    assert (second.name, second.start, second.count) == ("b", 0, 0)
    assert second.options["refine_steps"] == 4 and second.options["dilations"] == "1,9"
    assert second.options["cap_dilation"] is False and second.options["seed"] == 7
    args = second.args()
    assert (args.input, args.start_frame, args.refine_steps) == (clips / "b.mov", 0, 4)
    assert args.split_at_cuts is False


def test_a_json_shot_list(clips):
    listing = clips / "show.json"
    listing.write_text(json.dumps({"shots": [
        {"path": "a.mp4", "settings": {"preset": "full", "outputs": ["npz", "exr"]}},
        {"path": str(clips / "plate"), "name": "bg", "start": 1, "split_at_cuts": True},
    ]}))
    a, bg = collect_shots(listing, farm_args())
    assert a.options["preset"] == "full" and a.options["outputs"] == "npz,exr"
    assert (bg.name, bg.start, bg.options["split_at_cuts"]) == ("bg", 1, True)


def test_every_problem_is_listed_before_anything_runs(clips):
    listing = clips / "bad.csv"
    listing.write_text("path,name,start,refine_steps,dilations,device\n"
                       "missing.mp4,,,,,\n"
                       "a.mp4,,-3,,,\n"
                       "a.mp4,,,many,,\n"
                       "a.mp4,,,,\"5,10\",\n"
                       "b.mov,y,,,,cuda\n"
                       "notes.txt,,,,,\n"
                       "b.mov,x,,,,\n"
                       "a.mp4,x,,,,\n")
    with pytest.raises(ShotListError) as caught:
        collect_shots(listing, farm_args())
    problems = caught.value.problems
    print("\n".join(problems))
    assert len(problems) == 7
    assert "missing.mp4 does not exist" in problems[0]
    assert "start must be a whole number >= 0" in problems[1]
    assert "refine-steps" in problems[2] and "'many'" in problems[2]
    assert "dilations must include 1" in problems[3]
    assert "unknown shot setting 'device'" in problems[4]
    assert "neither a video file nor a folder of images" in problems[5]
    assert "2 shots are named 'x'" in problems[6]
    assert "Nothing was run" in str(caught.value)


def test_bad_lists_and_empty_folders(tmp_path):
    (tmp_path / "nopath.csv").write_text("file,name\na.mp4,x\n")
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "empty").mkdir()
    for spec, message in [("nopath.csv", "'path'"), ("broken.json", "not valid JSON"),
                          ("empty", "no shots found"), ("nothing_*.mp4", "no shots found")]:
        with pytest.raises(ShotListError, match=message):
            collect_shots(tmp_path / spec, farm_args())


def test_shot_options_apply_only_what_the_shot_sets():
    base = farm_args("-p", "full", "--seed", "3")
    options = shot_options(base, {"refine_steps": "0", "restore_resolution": "yes", "fps": ""})
    assert options["refine_steps"] == 0 and options["restore_resolution"] is True
    assert options["preset"] == "full" and options["seed"] == 3 and options["fps"] is None
    assert base.refine_steps is None  # the command's options are not changed
    with pytest.raises(InvalidSettings, match="true or false"):
        shot_options(base, {"restore_resolution": "maybe"})
    with pytest.raises(InvalidSettings, match="--outputs"):
        shot_options(base, {"outputs": "gif"})
    with pytest.raises(InvalidSettings, match="invalid choice"):
        shot_options(base, {"preset": "ultra"})
    assert PRESETS["full"].refine_steps == 10


def test_the_command_refuses_a_bad_list_with_one_line_and_exit_2(clips, tiny_model_dir, caplog):
    listing = clips / "bad.csv"
    listing.write_text("path,refine_steps\na.mp4,-1\n")
    assert main([str(listing), "-o", str(clips / "out"), "-m", str(tiny_model_dir)]) == 2
    assert "--refine-steps must be a whole number from 0" in caplog.text and "Nothing was run" in caplog.text
    assert not (clips / "out").exists()  # refused before anything was written


def test_module_entry_point_help():
    result = subprocess.run([sys.executable, "-m", "rollingdepth_core.farm", "--help"], capture_output=True,
                            text=True, check=True)
    for option in ("--address", "--workers", "--gpus-per-worker", "--retries", "--preset", "--split-at-cuts"):
        assert option in result.stdout


@pytest.fixture
def plates(tmp_path, make_image, plate_pixels):
    """Two plates: sh010/plate.1001-1006.exr and sh020/plate.1001-1006.exr without 1004."""
    for shot, numbers in (("sh010", range(1001, 1007)), ("sh020", (1001, 1002, 1003, 1005, 1006))):
        (tmp_path / shot).mkdir()
        for n in numbers:
            make_image(tmp_path / shot / f"plate.{n}.exr", plate_pixels(n))
    return tmp_path


@pytest.mark.parametrize("pattern", ["plate.####.exr", "plate.%04d.exr", "plate.@@@@.exr"])
def test_a_plate_pattern_is_a_shot_named_like_the_single_clip_command(plates, pattern):
    # issue 11 for plates: a pattern was "no shots found" (neither a file nor a folder)
    (shot,) = collect_shots(str(plates / "sh010" / pattern), farm_args("--frame-range", "1002-1005"))
    assert (shot.name, shot.path, shot.options["frame_range"]) == ("plate", plates / "sh010" / pattern,
                                                                   "1002-1005")
    args = shot.args()
    assert (args.input, args.frame_range, args.start_frame) == (shot.path, "1002-1005", 0)


def test_a_shot_list_of_plates_with_frame_ranges_checks_every_frame_up_front(plates):
    listing = plates / "show.csv"
    listing.write_text("path,name,frame_range,colour_space\n"
                       "sh010/plate.####.exr,sh010,1001-1006,ACEScg\n"
                       "sh020/plate.%04d.exr,sh020,1005-1006,\n")
    first, second = collect_shots(listing, farm_args())
    assert (first.name, first.options["frame_range"], first.options["colour_space"]) == (
        "sh010", "1001-1006", "ACEScg")
    assert (second.name, second.options["frame_range"], second.options["colour_space"]) == (
        "sh020", "1005-1006", "auto")
    bad = plates / "bad.csv"
    bad.write_text("path,frame_range,start\n"
                   "sh020/plate.####.exr,1001-1006,\n"      # 1004 missing
                   "sh010/plate.####.exr,1001-1006,2\n"     # a range and a start
                   "sh030/plate.####.exr,,\n"               # no such folder
                   "sh010/plate.####.exr,1006-1001,\n")     # backwards
    with pytest.raises(ShotListError) as caught:
        collect_shots(bad, farm_args())
    problems = caught.value.problems
    print("\n".join(problems))
    assert len(problems) == 4
    assert "is missing 1 of the frames 1001-1006: 1004" in problems[0]
    assert "give either frame_range or start / count" in problems[1]
    assert "the folder of the sequence" in problems[2] and "sh030" in problems[2]
    assert "ends before it starts" in problems[3]


def test_a_glob_of_shot_folders_gives_one_plate_each(plates):
    shots = collect_shots(str(plates / "sh0*" / "plate.####.exr"), farm_args("--frame-range", "1005-1006"))
    assert [(s.path.parent.name, s.name) for s in shots] == [("sh010", "sh010_plate"),
                                                             ("sh020", "sh020_plate")]
    with pytest.raises(ShotListError, match=r"shot 2 \(plate.####.exr\): .* is missing 1 of the frames "
                                            r"1001-1006: 1004"):
        collect_shots(str(plates / "sh0*" / "plate.####.exr"), farm_args())


def test_a_sharded_plate_opens_its_frame_range(plates, tiny_model_dir):
    # the shard worker opened the input without the shot's options: --frame-range (and the colour
    # space) were ignored, so a plate read every frame it had
    from rollingdepth_core.farm.shard_worker import ShardWorker
    from rollingdepth_core.farm.worker import ModelSpec

    (shot,) = collect_shots(str(plates / "sh010" / "plate.####.exr"),
                            farm_args("--frame-range", "1002-1004", "-r", "32", "-m", str(tiny_model_dir)))
    with worker_process_state():
        worker = ShardWorker(1, ModelSpec(str(tiny_model_dir), allow_download=False, device="cpu"))
        opened = worker.open_shot(vars(shot.args()))
    assert opened["num_frames"] == 3
    assert worker.source.clip.frame_numbers == (1002, 1003, 1004)


@contextlib.contextmanager
def worker_process_state():
    """A worker made in this process sets what a worker process sets (log level, no loading bars):
    put it back, so later tests see the command line's own behaviour."""
    import diffusers.utils.logging
    import transformers.utils.logging

    logger = logging.getLogger("rollingdepth_core")
    level = logger.level
    bars = [(m, m.is_progress_bar_enabled()) for m in (diffusers.utils.logging, transformers.utils.logging)]
    try:
        yield
    finally:
        logger.setLevel(level)
        for module, enabled in bars:
            (module.enable_progress_bar if enabled else module.disable_progress_bar)()


def test_a_plate_with_a_cut_splits_into_shots_within_its_frame_range(tmp_path, make_image):
    # split_shot opened every non-folder shot as a video: a plate pattern failed with "Could not open"
    from rollingdepth_core.evaluation.edited_clips import edited_clip
    from rollingdepth_core.farm.segments import split_shot

    frames = ((edited_clip(36, (18,), 40, 56) + 1) / 2).permute(0, 2, 3, 1).contiguous().numpy()
    for index, pixels in enumerate(frames):
        make_image(tmp_path / f"plate.{1000 + index}.png", pixels, pixel_type="uint16")
    (shot,) = collect_shots(str(tmp_path / "plate.####.png"),
                            farm_args("--frame-range", "1001-1035", "--split-at-cuts"))
    parts = split_shot(shot)
    assert [(p.name, p.start, p.count, p.first_frame) for p in parts] == [
        ("plate_00000-00016", 0, 17, 0), ("plate_00017-00034", 17, 18, 17)]
    assert all(p.options["frame_range"] == "1001-1035" for p in parts)
