"""The spread benchmark runs end to end on a tiny clip and reports what it measured."""

import json

from rollingdepth_core.bench.__main__ import main


def test_spread_benchmark_writes_table_json_and_figure(tmp_path, capsys):
    code = main(["spread", "--frames", "24", "--size", "24x16", "--dilations", "1,4", "--methods", "fast",
                 "--out", str(tmp_path), "--threads", "1"])
    assert code == 0
    rows = json.loads((tmp_path / "spread_benchmark.json").read_text())
    assert [r["method"] for r in rows] == ["fast"]
    row = rows[0]
    assert -1.0 <= row["spearman"] <= 1.0 and len(row["decile_errors"]) == 10
    assert row["num_pixels"] == 24 * 24 * 16
    assert row["spearman"] > 0.1  # outliers and blobs raise both spread and error, even on a tiny clip
    assert (tmp_path / "spread_vs_error.png").stat().st_size > 10_000
    assert "| fast |" in capsys.readouterr().out
