"""bench/files.py: the refusal of an earlier result, and atomic text and figure files."""

from __future__ import annotations

import os
import stat

import pytest

from rollingdepth_core.bench.files import (
    ResultExists,
    refuse_existing,
    save_figure_atomic,
    write_text_atomic,
)


def test_refusal_names_the_first_existing_file_and_the_flag(tmp_path):
    table, record = tmp_path / "a.md", tmp_path / "a.json"
    refuse_existing([table, None, record], overwrite=False, command="bench x")  # nothing there yet
    record.write_text("{}")
    with pytest.raises(ResultExists) as refused:
        refuse_existing([table, None, record], overwrite=False, command="bench x")
    assert str(refused.value) == f"bench x: {record} exists; pass --overwrite to replace it"
    table.write_text("old")
    with pytest.raises(ResultExists, match=r"^bench x: .*a\.md exists; pass --overwrite"):
        refuse_existing([table, record], overwrite=False, command="bench x")
    refuse_existing([table, record], overwrite=True, command="bench x")  # allowed: no error


def test_refusal_counts_a_dangling_link_as_a_result(tmp_path):
    link = tmp_path / "speed.json"
    link.symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(ResultExists, match="speed.json exists"):
        refuse_existing([link], overwrite=False, command="bench speed")


def figure_of(value: float):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = plt.figure(figsize=(2, 1.5), dpi=50)
    figure.add_subplot().plot([0, value])
    return figure


def test_figure_is_saved_in_the_format_of_its_suffix(tmp_path):
    import matplotlib.pyplot as plt

    figure = figure_of(1.0)
    try:
        png = save_figure_atomic(figure, tmp_path / "f.png", dpi=40)
        svg = save_figure_atomic(figure, tmp_path / "f.svg")
    finally:
        plt.close(figure)
    assert png == tmp_path / "f.png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(png.read_bytes()[16:20], "big") == 2 * 40  # width: 2 inches at dpi 40
    assert b"<svg" in svg.read_bytes()[:400]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png", "f.svg"]


def test_interrupted_figure_leaves_the_earlier_file_whole(tmp_path, interrupt_rename):
    import matplotlib.pyplot as plt

    path = tmp_path / "figure.png"
    first, second = figure_of(1.0), figure_of(-1.0)
    try:
        save_figure_atomic(first, path)
        earlier = path.read_bytes()
        with interrupt_rename(), pytest.raises(KeyboardInterrupt):
            save_figure_atomic(second, path)
    finally:
        plt.close(first)
        plt.close(second)
    assert path.read_bytes() == earlier
    assert [p.name for p in tmp_path.iterdir()] == ["figure.png"]  # no partial file left


def test_text_failing_midway_leaves_the_earlier_file_whole(tmp_path):
    path = tmp_path / "table.md"
    write_text_atomic(path, "earlier\n")
    with pytest.raises(UnicodeEncodeError):
        write_text_atomic(path, "\udcff")  # cannot be encoded: the write fails
    assert path.read_text() == "earlier\n"
    assert [p.name for p in tmp_path.iterdir()] == ["table.md"]


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_result_files_get_the_usual_permissions(tmp_path, mask):
    # mkstemp creates 0600: a result on a shared disk was unreadable to everyone but its writer
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    previous = os.umask(mask)
    try:
        write_text_atomic(tmp_path / "result.md", "x\n")
        figure = plt.figure(figsize=(1, 1))
        save_figure_atomic(figure, tmp_path / "figure.png")
        plt.close(figure)
    finally:
        os.umask(previous)
    for name in ("result.md", "figure.png"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~mask, name
