"""one_thread: one intra-op thread inside, the count restored after overlapping blocks."""

from __future__ import annotations

import threading

import torch

from rewriting.threads import one_thread


def test_overlapping_blocks_restore_the_count_only_when_the_last_leaves():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
        seen = {}

        def first():
            with one_thread():
                first_in.set()
                second_in.wait(10)
                seen["first"] = torch.get_num_threads()
            first_out.set()

        def second():
            first_in.wait(10)
            with one_thread():
                second_in.set()
                first_out.wait(10)
                seen["second_after_first_left"] = torch.get_num_threads()

        workers = [threading.Thread(target=f) for f in (first, second)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(20)
        assert seen == {"first": 1, "second_after_first_left": 1}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
