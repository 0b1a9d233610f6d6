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
    runs = record["runs"]
    assert [len(runs[m]) for m in ("reference", "ours")] == [2, 2]  # every mode twice by default
    seconds = {m: [r["seconds"] for r in runs[m]] for m in runs}
    modules = {m: [r["module_seconds"] for r in runs[m]] for m in runs}
    totals = {m: [s["total"] for s in seconds[m]] for m in runs}
    for mode, column in (("reference", 0), ("ours", 1)):
        best = lambda key, m=mode: min(s.get(key, 0.0) for s in seconds[m])  # noqa: E731
        printed = {name: float(table_row(text, name)[column]) for name in (
            "batch sizes", "encode", "snippet UNet", "decode", "align", "refine", "total",
            "total without align")}
        assert printed["encode"] == pytest.approx(best("encode"), abs=6e-4)
        assert printed["align"] == pytest.approx(best("align"), abs=6e-4)
        assert printed["refine"] == pytest.approx(best("refine"), abs=6e-4)
        assert printed["total"] == pytest.approx(min(totals[mode]), abs=6e-4)
        for name, key in (("snippet UNet", "denoise unet"), ("decode", "denoise decoder")):
            assert printed[name] == pytest.approx(min(m[key] for m in modules[mode]), abs=6e-4)
        for run in seconds[mode]:  # the stages lie within the timed total
            assert sum(v for k, v in run.items() if k != "total") <= run["total"] + 1e-6
        without = [s["total"] - s.get("align", 0.0) for s in seconds[mode]]
        assert printed["total without align"] == pytest.approx(min(without), abs=6e-4)
        spread = (max(totals[mode]) - min(totals[mode])) / min(totals[mode])
        assert table_row(text, "total")[3 + column] == f"{spread:.1%}"
        fps = float(table_row(text, "frames/s")[column])
        assert fps == pytest.approx(10 / min(totals[mode]), rel=2e-3)
    assert "batch sizes" in seconds["ours"][0] and "batch sizes" not in seconds["reference"][0]
    assert table_row(text, "batch sizes")[2] == "-"  # the reference resolves nothing
    for name in ("encode", "refine", "total"):
        reference, ours = (min(s[name] for s in seconds[m]) for m in ("reference", "ours"))
        ratio = reference / ours
        assert float(table_row(text, name)[2].rstrip("x")) == pytest.approx(ratio, abs=0.006)
    # the headline: end to end, with its range over the 2 x 2 pairings, and without align
    pairs = [a / b for a in totals["reference"] for b in totals["ours"]]
    headline = re.search(r"end to end: ours ([0-9.]+)x the authors' way \(([0-9.]+)x \.\. ([0-9.]+)x "
                         r"over the 4 pairings of runs\); total without align ([0-9.]+)x", text)
    assert headline, text
    assert float(headline[1]) == pytest.approx(min(totals["reference"]) / min(totals["ours"]), abs=0.006)
    assert (float(headline[2]), float(headline[3])) == pytest.approx((min(pairs), max(pairs)), abs=0.006)
    assert table_row(text, "peak VRAM (GiB)") == ["n/a", "n/a"]  # a CPU has none
    rss = {m: [(r["rss_ready"], r["peak_rss"]) for r in runs[m]] for m in runs}
    assert all(ready <= peak for pairs_ in rss.values() for ready, peak in pairs_)
    assert table_row(text, "snippets / VAE frames") == ["1", "/", "4", "8", "/", "4"]
    # the reference style calls the networks as the authors' release: one UNet call per snippet,
    # the snippets of a dilation decoded 4 frames per call (8 + 6 snippets of 3 frames: 6 + 5
    # calls), the clip encoded 4 frames per call; refinement 1 step at dilation 2: 6 snippets
    calls = runs["reference"][0]["module_calls"]
    assert (calls["denoise unet"], calls["denoise decoder"], calls["encode encoder"]) == (14, 6 + 5, 3)
    assert (calls["refine unet"], calls["refine decoder"], calls["refine encoder"]) == (6, 3, 3)
    assert runs["ours"][0]["module_calls"]["denoise unet"] == 2  # 8 snippets per call: 1 + 1
    # without co-alignment iterations both modes must give the same numbers end to end
    match = re.search(r"snippet depths ([0-9.e+-]+), final depth ([0-9.e+-]+)", text)
    assert match and float(match[1]) < 1e-4 and float(match[2]) < 1e-4
    assert record["flops"]["num_snippets"] == 8 + 6  # dilation 3 is capped to int(10 / 3) - 1 = 2


@pytest.mark.parametrize("option", [["--repeat", "0"], ["--frames", "0"], ["--repeat", "two"]])
def test_speed_refuses_bad_counts_before_any_work(option, capsys, monkeypatch):
    from rollingdepth_core.bench import speed

    monkeypatch.setattr(speed, "run", lambda *a, **k: pytest.fail("ran the benchmark"))
    with pytest.raises(SystemExit) as stopped:
        main(["speed", *TINY, *option])
    assert stopped.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"{option[0]}: must be a whole number >= 1; got '{option[1]}'" in error


def test_speed_json_is_written_atomically(tmp_path, monkeypatch, capsys, interrupt_rename):
    """The old --json file stays whole until the new one is complete (it was rewritten in place)."""

    from rollingdepth_core.bench import speed

    monkeypatch.setattr(speed, "run", lambda config, modes, in_process, repeat: {
        "config": config, "table": "table\n", "summary": {"modes": modes, "repeat": repeat}})
    out = tmp_path / "speed.json"
    assert main(["speed", *TINY, "--repeat", "3", "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["summary"] == {"modes": ["reference", "ours"], "repeat": 3}
    assert record["config"]["arch"] == "tiny" and capsys.readouterr().out == "table\n"

    with interrupt_rename(), pytest.raises(KeyboardInterrupt):
        main(["speed", *TINY, "--repeat", "2", "--json", str(out), "--overwrite"])
    assert json.loads(out.read_text())["summary"]["repeat"] == 3  # the old result, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["speed.json"]  # no partial file left


def test_reference_style_coalignment_equals_ours(case_a):
    """Solved where the snippets are, merged and normalised on the host: the same numbers
    as our co-alignment of the same snippets."""
    from rollingdepth_core.bench.reference_style import coalign_on_device
    from rollingdepth_core.coalign.methods import coalign_depth
    from rollingdepth_core.coalign.problem import CoalignSettings
    from rollingdepth_core.stages.snippets import plan_snippets
    from rollingdepth_core.types import SnippetDepths

    plan = plan_snippets(40, (1, 10), 3)
    snippets = SnippetDepths(plan, tuple(case_a[f"snippet_depth_d{d}"][:, :, 0] for d in (1, 10)))
    for method in ("reference", "fast"):
        settings = CoalignSettings(num_iterations=40)
        video, alignment = coalign_on_device(snippets, method, settings)
        expected, theirs = coalign_depth(snippets, method, settings)
        assert video.inverse_depth.device.type == "cpu"
        torch.testing.assert_close(video.inverse_depth, expected.inverse_depth, rtol=0, atol=0)
        assert alignment.objective == theirs.objective


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
    assert result["mode"] == "ours"
    stages = {k: v for k, v in result["seconds"].items() if k != "total"}
    assert set(stages) == {"batch sizes", "encode", "denoise", "align"}  # the batch sizes are timed
    assert sum(stages.values()) <= result["seconds"]["total"]
    assert result["peak_rss"] >= result["rss_ready"] > 0
    assert result["snippets_per_batch"] == 8 and result["vae_batch_size"] == 4  # CPU defaults
