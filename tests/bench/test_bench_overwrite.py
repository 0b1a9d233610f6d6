"""Every benchmark command refuses to replace an earlier result unless --overwrite: one line on
stderr, exit code 2, before any work (they rewrote their files silently)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rollingdepth_core.bench.__main__ import main

TINY = ["--arch", "tiny", "--size", "32x48", "--resolution", "0", "--threads", "1"]


def no_work(*args, **kwargs):
    pytest.fail("the benchmark started work before refusing the earlier result")


def assert_refused(code: int, capsys, command: str, path: Path, earlier: str) -> None:
    """Exit 2, exactly the one line naming ``path`` and the flag, ``path`` unchanged."""
    assert code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"bench {command}: {path} exists; pass --overwrite to replace it"]
    assert path.read_text() == earlier


@pytest.mark.parametrize("name", ["coalign_benchmark.md", "coalign_benchmark.json",
                                  "coalign_error_over_time.png"])
def test_align_refuses_an_earlier_result(name, tmp_path, monkeypatch, capsys):
    from rollingdepth_core.bench import align

    out = tmp_path / "docs"
    out.mkdir()
    (out / name).write_text("earlier")
    monkeypatch.setattr(align, "prepare_case", no_work)
    monkeypatch.setattr(align, "run_sweep_here", no_work)
    command = ["align", "--cases", "sweep,large", "--out", str(out), "--cache-dir", str(tmp_path)]
    assert_refused(main(command), capsys, "align", out / name, "earlier")

    def no_input(case, cache_dir):
        raise FileNotFoundError(f"no input for {case.key}")

    monkeypatch.setattr(align, "prepare_case", no_input)
    assert main(["align", "--cases", "small", "--out", str(out), "--cache-dir", str(tmp_path),
                 "--overwrite"]) == 1  # a case without input fails the run, its files are written
    assert "no input for small" in (out / "coalign_benchmark.md").read_text()


def test_align_without_the_figure_case_ignores_an_earlier_figure(tmp_path, monkeypatch):
    from rollingdepth_core.bench import align

    (tmp_path / "coalign_error_over_time.png").write_text("earlier")
    monkeypatch.setattr(align, "prepare_case", lambda case, cache: (_ for _ in ()).throw(OSError("none")))
    assert main(["align", "--cases", "small", "--out", str(tmp_path), "--cache-dir", str(tmp_path)]) == 1
    assert (tmp_path / "coalign_error_over_time.png").read_text() == "earlier"  # not written, not refused
    assert "input: none" in (tmp_path / "coalign_benchmark.md").read_text()


SPREAD = ["spread", "--frames", "24", "--size", "24x16", "--dilations", "1,4", "--methods", "fast",
          "--threads", "1"]


@pytest.mark.parametrize("name", ["spread_benchmark.md", "spread_benchmark.json", "spread_vs_error.png"])
def test_spread_refuses_an_earlier_result(name, tmp_path, monkeypatch, capsys):
    from rollingdepth_core.bench import spread

    (tmp_path / name).write_text("earlier")
    with monkeypatch.context() as patch:
        patch.setattr(spread, "measure", no_work)
        assert_refused(main([*SPREAD, "--out", str(tmp_path)]), capsys, "spread", tmp_path / name, "earlier")
    assert main([*SPREAD, "--out", str(tmp_path), "--overwrite"]) == 0
    assert json.loads((tmp_path / "spread_benchmark.json").read_text())[0]["method"] == "fast"
    assert (tmp_path / "spread_vs_error.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("stopped", ["spread_benchmark.md", "spread_benchmark.json", "spread_vs_error.png"])
def test_spread_results_are_written_atomically(stopped, tmp_path, interrupt_rename):
    """A run stopped while writing one file leaves the earlier one whole (.md/.json were
    rewritten in place, the figure saved in place) and no partial file."""
    assert main([*SPREAD, "--out", str(tmp_path)]) == 0
    earlier = (tmp_path / stopped).read_bytes()
    with interrupt_rename(stopped), pytest.raises(KeyboardInterrupt):
        main([*SPREAD, "--seed", "1", "--out", str(tmp_path), "--overwrite"])
    assert (tmp_path / stopped).read_bytes() == earlier
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "spread_benchmark.json", "spread_benchmark.md", "spread_vs_error.png"]


def test_speed_refuses_an_earlier_json(tmp_path, monkeypatch, capsys):
    from rollingdepth_core.bench import speed

    out = tmp_path / "speed.json"
    out.write_text('{"earlier": true}')
    with monkeypatch.context() as patch:
        patch.setattr(speed, "run", no_work)
        patch.setattr(speed, "config_from_args", no_work)
        assert_refused(main(["speed", *TINY, "--json", str(out)]), capsys, "speed", out, '{"earlier": true}')
    monkeypatch.setattr(speed, "run", lambda config, modes, in_process, repeat: {
        "config": config, "table": "", "summary": {"repeat": repeat}})
    assert main(["speed", *TINY, "--repeat", "3", "--json", str(out), "--overwrite"]) == 0
    assert json.loads(out.read_text())["summary"] == {"repeat": 3}


def memory_result(*args, **kwargs) -> dict:
    """What `runner.run_mode` returns, made up."""
    return {"peak_anon": 3 << 20, "anon_ready": 1 << 20, "peak_vram": None, "peak_rss": 5 << 20,
            "rss_ready": 4 << 20, "peak_file": 0, "seconds": {"total": 1.5}, "snippets_per_batch": 8,
            "vae_batch_size": 4, "device_name": "cpu"}


def test_memory_refuses_an_earlier_json(tmp_path, monkeypatch, capsys):
    from rollingdepth_core.bench import memory

    out = tmp_path / "memory.json"
    out.write_text("earlier")
    monkeypatch.setattr(memory, "run_mode", no_work)
    monkeypatch.setattr(memory, "run_mode_in_subprocess", no_work)
    command = ["memory", *TINY, "--frames", "6,12", "--in-process", "--json", str(out)]
    assert_refused(main(command), capsys, "memory", out, "earlier")
    monkeypatch.setattr(memory, "run_mode", memory_result)
    assert main([*command, "--overwrite"]) == 0
    assert [row["frames"] for row in json.loads(out.read_text())["rows"]] == [6, 12]


def test_memory_json_is_written_atomically(tmp_path, monkeypatch, interrupt_rename):
    """A run stopped while writing --json leaves the earlier file whole (it was rewritten in place)."""
    from rollingdepth_core.bench import memory

    out = tmp_path / "memory.json"
    monkeypatch.setattr(memory, "run_mode", memory_result)
    assert main(["memory", *TINY, "--frames", "6,12", "--in-process", "--json", str(out)]) == 0
    earlier = out.read_text()
    with interrupt_rename(), pytest.raises(KeyboardInterrupt):
        main(["memory", *TINY, "--frames", "6", "--in-process", "--json", str(out), "--overwrite"])
    assert out.read_text() == earlier
    assert [p.name for p in tmp_path.iterdir()] == ["memory.json"]


def test_farm_refuses_an_earlier_json(tmp_path, monkeypatch, capsys):
    from test_bench_farm import sample_report

    from rollingdepth_core.bench import farm

    out = tmp_path / "farm.json"
    out.write_text("earlier")
    monkeypatch.setattr(farm, "measure", no_work)
    assert_refused(main(["farm", "--json", str(out)]), capsys, "farm", out, "earlier")
    monkeypatch.setattr(farm, "measure", lambda args: sample_report("2026-12-03"))
    assert main(["farm", "--json", str(out), "--overwrite"]) == 0
    assert json.loads(out.read_text())["date"] == "2026-12-03"
