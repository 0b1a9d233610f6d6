"""Per-frame files numbered from a first frame (segments keep their original frame numbers)."""

import numpy as np

from rollingdepth_core.io.export import frame_paths, read_exr, save_exr, save_png16


def test_frame_files_start_at_first_frame(tmp_path):
    depth = np.random.default_rng(0).random((3, 4, 5)).astype(np.float32)
    pngs = save_png16(tmp_path / "png", depth, prefix="shot", first_frame=1001)
    assert [p.name for p in pngs] == ["shot_01001.png", "shot_01002.png", "shot_01003.png"]
    exrs = save_exr(tmp_path / "exr", depth, prefix="shot", first_frame=7)
    assert [p.name for p in exrs] == ["shot_00007.exr", "shot_00008.exr", "shot_00009.exr"]
    np.testing.assert_array_equal(read_exr(exrs[2]), depth[2])
    assert frame_paths(tmp_path, "a", 2, ".png") == [tmp_path / "a_00000.png", tmp_path / "a_00001.png"]
