"""Batches with out-of-memory halving."""

import logging

import pytest
import torch

from rollingdepth_core.errors import InvalidSettings
from rollingdepth_core.hooks import Hooks
from rollingdepth_core.runtime.batch_loop import ShrinkingBatch, run_in_batches
from rollingdepth_core.runtime.devices import is_out_of_memory


def test_batches_cover_every_item_once():
    seen = []
    final = run_in_batches(10, 4, lambda a, b: seen.append((a, b)), "cpu")
    assert seen == [(0, 4), (4, 8), (8, 10)] and final == 4


def test_oom_halves_and_retries_without_losing_work(caplog):
    done = []

    def work(start, stop):
        if stop - start > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        done.extend(range(start, stop))

    progress = []
    with caplog.at_level(logging.WARNING):
        final = run_in_batches(7, 8, work, "cpu", Hooks(progress=lambda d, t: progress.append((d, t))),
                               what="snippets")
    assert done == list(range(7)) and final == 2
    assert caplog.text.count("Out of memory") == 2 and "2 snippets per batch" in caplog.text
    assert progress == [(2, 7), (4, 7), (6, 7), (7, 7)]


def test_oom_at_batch_one_is_raised():
    def work(start, stop):
        raise torch.OutOfMemoryError("out of memory")

    with pytest.raises(torch.OutOfMemoryError):
        run_in_batches(3, 1, work, "cpu")


def test_other_errors_pass_through():
    def work(start, stop):
        raise KeyError("boom")

    with pytest.raises(KeyError):
        run_in_batches(3, 2, work, "cpu")


def test_progress_offset_and_cancel():
    progress = []
    run_in_batches(4, 2, lambda a, b: None, "cpu", Hooks(progress=lambda d, t: progress.append((d, t))),
                   progress_offset=10, progress_total=20)
    assert progress == [(12, 20), (14, 20)]

    class Stop(Exception):
        pass

    def cancel():
        raise Stop

    with pytest.raises(Stop):
        run_in_batches(4, 2, lambda a, b: None, "cpu", Hooks(check_cancel=cancel))


def test_bad_batch_size():
    with pytest.raises(InvalidSettings, match="batch size"):
        run_in_batches(3, 0, lambda a, b: None, "cpu")


def test_is_out_of_memory():
    assert is_out_of_memory(torch.OutOfMemoryError("x"))
    assert is_out_of_memory(RuntimeError("MPS backend out of memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


def test_shrinking_batch_keeps_the_size_that_fitted():
    batch, calls = ShrinkingBatch(8), []

    def work(start, stop):
        if stop - start > 3:
            raise torch.OutOfMemoryError("CUDA out of memory")
        calls.append((start, stop))

    batch.run(10, work, "cpu")
    assert batch.size == 2 and calls[0] == (0, 2)  # 8 -> 4 -> 2
    calls.clear()
    batch.run(5, work, "cpu")  # the next loop starts where the last one ended up
    assert calls == [(0, 2), (2, 4), (4, 5)] and batch.size == 2
    ShrinkingBatch(4).run(0, work, "cpu")  # nothing to do is fine
