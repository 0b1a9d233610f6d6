"""The co-alignment benchmark: cached inputs, one measurement, the table and the figure."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from rollingdepth_core.bench import data, report, worker


@pytest.fixture(scope="module")
def tiny_case(tmp_path_factory):
    case = data.Case("tiny", "synthetic, 40 x 32x24", 40, 24, 32, ("naive", "fast"))
    folder = data.prepare_case(case, tmp_path_factory.mktemp("cache"))
    return case, folder


def test_prepared_case_is_cached_and_loads_both_ways(tiny_case):
    case, folder = tiny_case
    stamp = (folder / "truth.bin").stat().st_mtime_ns
    assert data.prepare_case(case, folder.parent) == folder
    relabelled = dataclasses.replace(case, title="other label", methods=("robust",))
    assert data.prepare_case(relabelled, folder.parent) == folder
    assert (folder / "truth.bin").stat().st_mtime_ns == stamp  # reused, not regenerated
    in_memory, truth = data.load_case(folder, "memory")
    on_disk, _ = data.load_case(folder, "disk")
    assert isinstance(in_memory.depths[0], torch.Tensor)
    assert in_memory.depths[0].dtype == torch.float16
    assert torch.equal(on_disk.depths[1][...], in_memory.depths[1])
    assert truth.shape == (40, 24, 32)
    assert [g.dilation for g in in_memory.plan.groups] == [1, 10, 12]  # 25 capped to 40/3 - 1


def test_case_record_is_written_atomically(tmp_path, interrupt_rename):
    """meta.json (what the cached files were made for) is replaced whole or not at all: a stop
    while rewriting it left a broken file that failed every later run of the case (JSONDecodeError)."""
    import json

    case = data.Case("tiny", "synthetic, 12 x 16x8", 12, 8, 16, ("naive",))
    folder = data.prepare_case(case, tmp_path)
    earlier = (folder / "meta.json").read_text()
    files = sorted(p.name for p in folder.iterdir())

    with interrupt_rename(), pytest.raises(KeyboardInterrupt):
        data.prepare_case(dataclasses.replace(case, title="relabelled"), tmp_path)
    assert (folder / "meta.json").read_text() == earlier  # whole, not rewritten in place
    assert sorted(p.name for p in folder.iterdir()) == files  # no partial file left
    stamp = (folder / "truth.bin").stat().st_mtime_ns
    assert data.prepare_case(dataclasses.replace(case, title="relabelled"), tmp_path) == folder
    assert (folder / "truth.bin").stat().st_mtime_ns == stamp  # still reused
    assert json.loads((folder / "meta.json").read_text())["case"]["title"] == "relabelled"


def test_measure_reports_comparable_numbers(tiny_case):
    _, folder = tiny_case
    naive = worker.measure(folder, "naive", "memory", 1)
    fast = worker.measure(folder, "fast", "disk", 1)
    assert fast["objective"] < naive["objective"]
    assert fast["absrel"] < naive["absrel"]
    assert len(fast["frame_absrel"]) == 40
    assert fast["total_s"] == pytest.approx(fast["solve_s"] + fast["merge_s"])
    assert fast["peak_gib"] > 0
    assert len(fast["profile"]) == 40 and len(fast["truth_profile"][0]) == len(fast["profile"][0])


def test_table_and_figure(tmp_path):
    base = dict(objective=0.2, absrel=10.0, delta1=80.0, temporal_error=0.004, solve_s=1.0,
                merge_s=0.5, peak_gib=0.3, frame_absrel=[10.0, 11.0, 9.0], profile_row=3,
                profile=[[0.1, 0.2], [0.2, 0.3], [0.3, 0.4]],
                truth_profile=[[0.1, 0.2], [0.2, 0.3], [0.3, 0.4]])
    results = [
        dict(base, case="c", method="reference", total_s=30.0),
        dict(base, case="c", method="fast", total_s=1.5, absrel=9.5),
        dict(base, case="c", method="naive", total_s=0.5),
    ]
    assert report.speedups(results) == {("c", "fast"): 20.0}
    table = report.format_table(results, {"c": "clip"})
    lines = table.strip().splitlines()
    assert lines[0] == report.HEADER and len(lines) == 5
    row = "| clip | fast (default) | 0.20000 | 9.50 | 80.00 | 0.00400 | 1.00 | 0.50 | 1.50 | 20.0x | 0.30 |"
    assert row in lines
    figure = tmp_path / "fig.png"
    report.plot_error_over_time(results, "c", "clip", figure)
    assert figure.stat().st_size > 1000


def test_figure_is_saved_atomically(tmp_path, interrupt_rename):
    """A run stopped while saving the error-over-time figure leaves the earlier one whole (it
    was saved in place) and no partial file."""

    base = dict(objective=0.2, absrel=10.0, delta1=80.0, temporal_error=0.004, solve_s=1.0, merge_s=0.5,
                peak_gib=0.3, frame_absrel=[10.0, 11.0], profile_row=0, profile=[[0.1], [0.2]],
                truth_profile=[[0.1], [0.2]], case="c", total_s=1.0)
    figure = tmp_path / "coalign_error_over_time.png"
    report.plot_error_over_time([dict(base, method="fast")], "c", "clip", figure)
    earlier = figure.read_bytes()
    with interrupt_rename(), pytest.raises(KeyboardInterrupt):
        report.plot_error_over_time([dict(base, method="naive", absrel=30.0)], "c", "clip", figure)
    assert figure.read_bytes() == earlier and earlier[:4] == b"\x89PNG"
    assert [p.name for p in tmp_path.iterdir()] == [figure.name]


def test_cases_cover_the_issue():
    assert data.CASES["large"].height == 432 and data.CASES["large"].width == 768
    assert data.CASES["long"].num_frames == 1000 and data.CASES["long"].storage == "disk"
    assert {"naive", "reference", "fast"} <= set(data.CASES["small"].methods)
    assert dataclasses.is_dataclass(data.CASES["golden"])


def test_command_runs_measures_and_writes(tiny_case, tmp_path, monkeypatch, capsys):
    from rollingdepth_core.bench import __main__ as command
    from rollingdepth_core.bench import align

    case, folder = tiny_case
    monkeypatch.setitem(data.CASES, "tiny", case)
    monkeypatch.setattr(align, "FIGURE_CASE", "tiny")
    out = tmp_path / "out"
    assert command.main(["align", "--cases", "tiny", "--cache-dir", str(folder.parent),
                         "--out", str(out), "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert "| synthetic, 40 x 32x24 | fast (default) |" in printed and "Machine:" in printed
    assert (out / "coalign_benchmark.md").read_text() in printed + "\n"
    assert (out / "coalign_error_over_time.png").stat().st_size > 1000
    with pytest.raises(SystemExit, match="unknown case"):
        command.main(["align", "--cases", "nope", "--out", str(out)])


def test_failed_cases_are_listed_and_fail_the_command(tiny_case, tmp_path, monkeypatch, capsys):
    """Issue 12 §3: a case without input or a measurement that crashes is reported (table,
    JSON, exit status 1), not skipped silently."""
    import json
    import subprocess

    from rollingdepth_core.bench import align

    case, folder = tiny_case
    missing = data.Case("missing", "synthetic, no input", 40, 24, 32, ("fast",))
    monkeypatch.setitem(data.CASES, "tiny", case)
    monkeypatch.setitem(data.CASES, "missing", missing)
    real_prepare, real_worker = align.prepare_case, align.run_worker

    def prepare(case, cache_dir):
        if case.key == "missing":
            raise FileNotFoundError("golden align_small not found; set ROLLINGDEPTH_GOLDEN.")
        return real_prepare(case, cache_dir)

    def worker(folder, method, storage, threads):
        if method == "fast":
            raise subprocess.CalledProcessError(1, ["worker"])
        return real_worker(folder, method, storage, threads)

    monkeypatch.setattr(align, "prepare_case", prepare)
    monkeypatch.setattr(align, "run_worker", worker)
    out = tmp_path / "out"
    code = align.run(argparse_namespace(cases="tiny,missing", cache_dir=folder.parent, out=out))
    printed = capsys.readouterr().out
    assert code == 1
    assert "| synthetic, 40 x 32x24 | naive per-frame mean |" in printed
    assert "FAILED (2)" in printed
    assert "- synthetic, 40 x 32x24, fast: Command '['worker']' returned non-zero exit status 1." in printed
    assert "- synthetic, no input: input: golden align_small not found" in printed
    saved = json.loads((out / "coalign_benchmark.json").read_text())
    assert [f["case"] for f in saved["failures"]] == ["synthetic, 40 x 32x24, fast", "synthetic, no input"]



@pytest.mark.parametrize("stopped", ["coalign_benchmark.md", "coalign_benchmark.json"])
def test_results_are_written_atomically(stopped, tmp_path, monkeypatch, capsys, interrupt_rename):
    """A run stopped while writing leaves the earlier .md/.json whole (they were rewritten in
    place) and no partial file."""
    import json

    from rollingdepth_core.bench import align

    def no_input(case, cache_dir):
        raise FileNotFoundError(f"no input for {case.key}")

    monkeypatch.setattr(align, "prepare_case", no_input)
    out = tmp_path / "out"
    assert align.run(argparse_namespace(cases="small", cache_dir=tmp_path, out=out)) == 1
    names = ("coalign_benchmark.md", "coalign_benchmark.json")
    earlier = {name: (out / name).read_text() for name in names}
    assert json.loads(earlier["coalign_benchmark.json"])["failures"] == [
        {"case": "synthetic, 250 x 96x64", "error": "input: no input for small"}]
    with interrupt_rename(stopped), pytest.raises(KeyboardInterrupt):
        align.run(argparse_namespace(cases="golden", cache_dir=tmp_path, out=out, overwrite=True))
    assert (out / stopped).read_text() == earlier[stopped]  # the earlier result, whole
    assert sorted(p.name for p in out.iterdir()) == sorted(names)  # no partial file left
    if stopped.endswith(".json"):  # the table before it was complete, so it was replaced
        assert "no input for golden" in (out / "coalign_benchmark.md").read_text()


def argparse_namespace(**values):
    import argparse

    defaults = dict(methods="", threads=1, overwrite=False)
    return argparse.Namespace(**{**defaults, **values})
