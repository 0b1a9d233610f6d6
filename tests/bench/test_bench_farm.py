"""The farm benchmark's parts that need no Ray (the Ray runs are the farm tests' subject)."""

import argparse
import io
import sys

import numpy as np
import pytest

from rollingdepth_core.bench.farm import coalign_seconds, full_model_flops, make_shots, print_report
from rollingdepth_core.io.sources import VideoFileSource


def test_make_shots_writes_clips_and_a_list(tmp_path):
    listing = make_shots(tmp_path, 2, 5, (16, 24))
    assert listing.read_text().splitlines() == ["path", "shot00.mp4", "shot01.mp4"]
    first, second = (VideoFileSource(tmp_path / f"shot0{i}.mp4") for i in range(2))
    assert first.num_frames == 5 and first.input_size == (16, 24)
    assert not np.allclose(first.read(0, 1).numpy(), second.read(0, 1).numpy())  # different shots


def test_coalign_seconds_and_flops():
    seconds = coalign_seconds(40, (16, 24))
    assert set(seconds) == {"fast", "full"} and all(0 < s < 60 for s in seconds.values())
    flops = full_model_flops((432, 768))
    print(f"UNet {flops['unet_snippet'] / 1e9:.1f} GFLOP per snippet at 432x768")
    assert 1e12 < flops["unet_snippet"] < 1e13 and flops["decode_frame"] > flops["encode_frame"] > 0
    fast, full = flops["per_frame"]["fast"], flops["per_frame"]["full"]
    assert fast["refine"] == 0 and fast["denoise"] == 2 * (flops["unet_snippet"] + 3 * flops["decode_frame"])
    assert full["refine"] == 10 * flops["unet_snippet"] + flops["encode_frame"] + flops["decode_frame"]


def sample_report(date: str = "2026-12-02") -> dict:
    """A report as `measure` returns it (made up figures)."""
    queue = {1: {"seconds": 60.0, "shots_per_minute": 4.0, "worker_seconds": 40.0},
             2: {"seconds": 40.0, "shots_per_minute": 6.0, "worker_seconds": 45.0}}
    shard = {"frames": 24, "gathered_bytes_per_frame": 2048.0, "sent_bytes_per_frame": 1024.0,
             "max_abs_vs_whole": 1e-6, "timings": {"encode": 1.0}}
    return {"date": date, "cpus": 2, "model": "tiny", "shots": 4, "frames_per_shot": 24,
            "size": "48x64", "ray_start_s": 9.0, "queue": queue, "queue_ratio": 1.5, "shard": shard,
            "coalign_s_per_1000_frames": {"fast": 1.5, "full": 2.5}, "coalign_size": "64x96",
            "flops": {"unet_snippet": 3e12, "decode_frame": 2e12, "encode_frame": 1e12,
                      "per_frame": {"fast": {"encode": 1e12, "denoise": 1.8e13, "refine": 0}}},
            "flops_size": "432x768"}


def test_report_lines(monkeypatch):
    report = sample_report()
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    print_report(report, argparse.Namespace(workers=2))
    text = out.getvalue()
    assert "      2     40.0        6.00            45.0" in text and "ratio 2 vs 1 worker: 1.50x" in text
    assert "gathered 2.0 KiB/frame, sent 1.0 KiB/frame" in text and "1.50 s per 1000 frames" in text
    assert "fast: 19.00 TFLOP per frame" in text


def test_shard_bytes_and_the_scaling_model():
    from rollingdepth_core.bench.farm import scaling, shard_bytes_per_frame

    fast = shard_bytes_per_frame("fast", (432, 768), 4)
    predictions = ((1000 - 2) + (1000 - 50)) * 3 / 1000  # dilations 1 and 25, 3 frames per snippet
    assert fast["predictions_per_frame"] == predictions
    assert fast["gathered"] == 4 * 4 * 54 * 96 + predictions * 432 * 768 * 2
    assert fast["sent"] == 4 * 4 * 4 * 54 * 96
    full = shard_bytes_per_frame("full", (576, 1024), 2)
    latent = 4 * 4 * 72 * 128
    assert full["sent"] == 2 * latent + 4 * 576 * 1024 + 10 * 2 * latent + latent
    model = scaling(flops_per_frame=100e12, bytes_per_frame=1e6, coalign_s_per_frame=0.05, gpus=4, tflops=400,
                    bandwidth=1e8)
    assert model["one_gpu"] == 0.25 + 0.05 and abs(model["sharded"] - (0.0625 + 0.05 + 0.01)) < 1e-12
    assert abs(model["break_even_bandwidth"] - 1e6 / (0.25 * 0.75)) < 1e-6


def test_json_is_written_atomically(tmp_path, monkeypatch, capsys, interrupt_rename):
    """A run stopped while writing --json leaves the earlier file whole (it was rewritten in
    place) and no partial file."""
    import json

    from rollingdepth_core.bench import farm

    out = tmp_path / "farm.json"
    args = argparse.Namespace(workers=2, json=out, overwrite=False)
    monkeypatch.setattr(farm, "measure", lambda args: sample_report("2026-12-01"))
    assert farm.run(args) == 0
    args.overwrite = True
    assert "RollingDepth farm benchmark, 2026-12-01" in capsys.readouterr().out
    assert json.loads(out.read_text()) == json.loads(json.dumps(sample_report("2026-12-01")))
    monkeypatch.setattr(farm, "measure", lambda args: sample_report("2026-12-02"))
    with interrupt_rename(), pytest.raises(KeyboardInterrupt):
        farm.run(args)
    assert json.loads(out.read_text())["date"] == "2026-12-01"  # the earlier result, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["farm.json"]  # no partial file left
