"""The benchmark command: dispatcher, speed and memory tables, FLOP counts, peak table."""

from __future__ import annotations

import json
import re

import pytest
import torch

from rollingdepth_core.bench.__main__ import main
from rollingdepth_core.bench.architectures import unet_config, vae_config
from rollingdepth_core.bench.flops import call_flops, peak_tflops

TINY = ["--arch", "tiny", "--size", "32x48", "--resolution", "0", "--threads", "1"]


def table_row(text: str, name: str) -> list[str]:
    """The cells after a row's name in a printed table."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return line[len(name):].split()
    raise AssertionError(f"no row {name!r} in:\n{text}")


def test_dispatcher_usage(capsys):
    assert main([]) == 2
    assert "speed" in capsys.readouterr().err
    assert main(["fly"]) == 2
    assert main(["--help"]) == 0


def test_dispatcher_runs_parser_style_subcommands(monkeypatch):
    """Subcommands may also offer add_arguments(parser) and run(args) (as `align` does)."""
    import sys
    import types

    import rollingdepth_core.bench.__main__ as dispatcher

    fake = types.ModuleType("rollingdepth_core.bench.fake")
    fake.add_arguments = lambda parser: parser.add_argument("--level", type=int)
    fake.run = lambda args: args.level + 1
    monkeypatch.setitem(sys.modules, "rollingdepth_core.bench.fake", fake)
    monkeypatch.setitem(dispatcher.SUBCOMMANDS, "fake", "fake")
    assert main(["fake", "--level", "4"]) == 5


def test_speed_smoke_in_process(capsys, tmp_path):
    out = tmp_path / "speed.json"
    code = main([
        "speed", *TINY, "--frames", "10", "--dilations", "1,3", "--refine-steps", "1",
        "--coalign-iterations", "0", "--in-process", "--no-warmup", "--json", str(out),
    ])
    assert code == 0
    text = capsys.readouterr().out
    record = json.loads(out.read_text())
    for name in ("encode", "snippet UNet", "decode", "align", "refine", "total"):
        cells = table_row(text, name)
        reference, ours = float(cells[0]), float(cells[1])
        assert reference > 0 and ours > 0
        speedup = float(cells[2].rstrip("x"))  # printed with 2 decimals
        assert speedup > 0
        assert speedup == pytest.approx(record["summary"]["speedup"][name], abs=0.006)
    fps = [float(v) for v in table_row(text, "frames/s")]
    assert all(v > 0 for v in fps)
    assert table_row(text, "peak VRAM (GiB)") == ["n/a", "n/a"]  # a CPU has none
    assert all(float(v) > 0 for v in table_row(text, "peak host RAM (GiB)"))
    assert table_row(text, "snippets / VAE frames") == ["1", "/", "4", "8", "/", "4"]
    # without co-alignment iterations both modes must give the same numbers end to end
    match = re.search(r"snippet depths ([0-9.e+-]+), final depth ([0-9.e+-]+)", text)
    assert match and float(match[1]) < 1e-4 and float(match[2]) < 1e-4
    assert record["flops"]["num_snippets"] == 8 + 6  # dilation 3 is capped to int(10 / 3) - 1 = 2


def test_memory_smoke(capsys):
    code = main(["memory", *TINY, "--frames", "6,12", "--coalign-iterations", "2", "--in-process"])
    assert code == 0
    text = capsys.readouterr().out
    rows = [line.split() for line in text.splitlines() if re.match(r"\s+\d+\s", line)]
    assert [int(r[0]) for r in rows] == [6, 12]
    for row in rows:
        assert row[1] == "n/a" and float(row[2]) > 0  # VRAM n/a on a CPU; RSS measured
    assert "growth per frame" in text and "inherent host bytes per frame" in text


def test_full_architecture_flops_at_768x432():
    """Same compute as the published checkpoint: counted by hand from its layers in
    tests/bench/test_flops.py; here only that the benchmark reports those counts."""
    from test_flops import unet_flops, vae_flops

    flops = call_flops(unet_config("full"), vae_config("full"), (432, 768), 3)
    assert flops.unet_snippet == unet_flops(unet_config("full"), (54, 96), 3)
    assert (flops.decode_frame, flops.encode_frame) == vae_flops(vae_config("full"), (432, 768))


def test_gpu_peak_table():
    assert peak_tflops("NVIDIA H100 80GB HBM3", torch.bfloat16) == 989.5
    assert peak_tflops("NVIDIA H100 PCIe", torch.float16) == 756.5
    assert peak_tflops("NVIDIA H200", torch.float16) == 989.5
    assert peak_tflops("NVIDIA A100-SXM4-80GB", torch.float16) == 312.0
    assert peak_tflops("NVIDIA L40S", torch.float16) == 362.05
    assert peak_tflops("NVIDIA L4", torch.float16) == 121.0
    assert peak_tflops("NVIDIA GeForce RTX 4090", torch.bfloat16) == 165.2
    assert peak_tflops("NVIDIA H100 80GB HBM3", torch.float32) is None
    assert peak_tflops("Some Future GPU", torch.float16) is None


def test_mode_in_a_fresh_process():
    from rollingdepth_core.bench.runner import BenchConfig, run_mode_in_subprocess

    config = BenchConfig(arch="tiny", frames=6, input_size=(24, 32), resolution=0, dtype="fp32",
                         coalign_iterations=2, warmup=False, threads=1)
    result = run_mode_in_subprocess(config, "ours")
    assert result["mode"] == "ours" and result["seconds"]["total"] > 0
    assert result["peak_rss"] >= result["rss_ready"] > 0
    assert result["snippets_per_batch"] == 8 and result["vae_batch_size"] == 4  # CPU defaults
