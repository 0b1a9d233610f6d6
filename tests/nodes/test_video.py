"""Stage nodes fed a ComfyUI VIDEO (core LoadVideo) instead of an IMAGE batch, without ComfyUI.

The VIDEO objects are shaped like ComfyUI's (`get_stream_source`, `get_components`,
`get_active_trim_window`); a file-backed one must be decoded lazily, never as a whole.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from rollingdepth_pack.nodes import NODE_CLASS_MAPPINGS as NODES
from rollingdepth_pack.rollingdepth_core.coalign.methods import coalign_depth
from rollingdepth_pack.rollingdepth_core.errors import InvalidInput
from rollingdepth_pack.rollingdepth_core.io.sources import VideoFileSource
from rollingdepth_pack.rollingdepth_core.stages.denoise import predict_snippets
from rollingdepth_pack.rollingdepth_core.stages.refine import refine_video
from rollingdepth_pack.rollingdepth_core.stages.snippets import plan_snippets

NUM_FRAMES, HEIGHT, WIDTH = 7, 40, 64
EXACT = {"rtol": 0.0, "atol": 1e-6}


def run(node_id: str, **inputs):
    cls = NODES[node_id]
    with torch.inference_mode():
        return getattr(cls(), cls.FUNCTION)(**inputs)


class VideoInput(ABC):
    """Like ComfyUI's VideoInput: its own get_stream_source re-encodes, so it must not be used."""

    @abstractmethod
    def get_components(self): ...

    def get_stream_source(self):
        raise AssertionError("the re-encoding fallback must not be used")


class VideoFromFile(VideoInput):
    def __init__(self, path):
        self.path = path

    def get_stream_source(self):
        return self.path

    def get_components(self):
        raise AssertionError("a file-backed VIDEO must be decoded lazily, never whole")

    def get_active_trim_window(self):
        return (0.0, 0.0)


class VideoFromComponents(VideoInput):
    def __init__(self, images):
        self.images = images

    def get_components(self):
        return SimpleNamespace(images=self.images, audio=None, frame_rate=24)


@pytest.fixture(scope="module")
def video_file(tmp_path_factory):
    import av

    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    with av.open(str(path), "w") as output:
        stream = output.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for i in range(NUM_FRAMES):
            rgb = np.stack([(xx * 4 + i * 9) % 256, (yy * 5 + i * 3) % 256, (xx + yy) * 2 % 256], -1)
            frame = av.VideoFrame.from_ndarray(rgb.astype(np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    return str(path)


def test_sample_snippets_counts_video_frames(video_file):
    plan, _ = run("RollingDepthSampleSnippets", dilations="1,2", snippet_length=3, cap_dilation=True,
                  num_frames=0, video=VideoFromFile(video_file))
    assert plan.num_frames == NUM_FRAMES


def test_denoise_and_refine_read_a_video_file_lazily(pack_model, video_file):
    plan = plan_snippets(NUM_FRAMES, (1, 2), 3, True)
    (snippets,) = run("RollingDepthDenoiseSnippets", model=pack_model, plan=plan, processing_resolution=32,
                      seed=5, snippets_per_batch=0, video=VideoFromFile(video_file))
    source = VideoFileSource(video_file, pixel_format="auto")  # what ComfyUI's own loader decodes
    with torch.inference_mode():
        expected = predict_snippets(pack_model.model, source, plan, 32, seed=5)
    for ours, theirs in zip(snippets.depths, expected.depths, strict=True):
        assert ours.shape[-2:] == (20, 32)
        torch.testing.assert_close(ours, theirs, **EXACT)
    with torch.inference_mode():
        coaligned, _ = coalign_depth(expected, "fast")
        refined_core = refine_video(pack_model.model, source, coaligned, num_steps=2, start_dilation=2,
                                    seed=5)
    (refined,) = run("RollingDepthRefine", model=pack_model, depth=coaligned, num_steps=2, start_dilation=2,
                     snippet_length=3, cap_dilation=True, processing_resolution=0, seed=5,
                     snippets_per_batch=0, video=VideoFromFile(video_file))
    torch.testing.assert_close(refined.inverse_depth, refined_core.inverse_depth, **EXACT)


def test_video_from_images_equals_the_image_batch(pack_model, pack_images):
    inputs = dict(model=pack_model, preset="fast", seed=1, snippets_per_batch=4, resolution_override=32,
                  output_size="processing")
    from_images, _ = run("RollingDepth", images=pack_images, **inputs)
    from_video, _ = run("RollingDepth", video=VideoFromComponents(pack_images), **inputs)
    torch.testing.assert_close(from_video.inverse_depth, from_images.inverse_depth, **EXACT)


def test_frames_must_come_from_exactly_one_input(pack_model, pack_images, video_file):
    plan = plan_snippets(9, (1,), 3, True)
    inputs = dict(model=pack_model, plan=plan, processing_resolution=32, seed=0, snippets_per_batch=0)
    with pytest.raises(InvalidInput, match="only one"):
        run("RollingDepthDenoiseSnippets", images=pack_images, video=VideoFromFile(video_file), **inputs)
    with pytest.raises(InvalidInput, match="Connect the video frames"):
        run("RollingDepthDenoiseSnippets", **inputs)
    with pytest.raises(InvalidInput, match="7 frames but the snippet plan was made for 9"):
        run("RollingDepthDenoiseSnippets", video=VideoFromFile(video_file), **inputs)
    with pytest.raises(InvalidInput, match="not a video"):
        run("RollingDepthSampleSnippets", dilations="1", snippet_length=3, cap_dilation=True, num_frames=0,
            video=object())
