"""Hot swap without threads of its own: offered, taken at the next inference, done at its first chunk."""

from __future__ import annotations

import pytest

from gen0_policy.runtime.swap import HotSwap


class Named:
    def __init__(self, checkpoint_id: str) -> None:
        self.checkpoint_id = checkpoint_id


def test_an_offered_policy_is_taken_once_and_loading_lasts_until_its_first_chunk() -> None:
    swap, old, new = HotSwap(), Named("old"), Named("new")
    assert swap.take(old) is old and swap.loading == ""
    swap.offer(new)
    assert swap.loading == "new"
    assert swap.take(old) is new
    assert swap.take(new) is new  # taken once; the next inference keeps it
    swap.first_chunk(old)  # a late chunk of the old policy does not end the swap
    assert swap.loading == "new"
    swap.first_chunk(new)
    assert swap.loading == "" and swap.error == ""


def test_a_background_load_offers_its_policy_or_says_why_it_failed() -> None:
    swap, old, new = HotSwap(), Named("old"), Named("new")
    future = swap.load(lambda: new, "ckpt-a")
    assert future.result(timeout=5) is new
    assert swap.loading == "new" and swap.take(old) is new

    def broken() -> Named:
        raise OSError("no such folder")

    swap = HotSwap()
    future = swap.load(broken, "ckpt-b")
    with pytest.raises(OSError):
        future.result(timeout=5)
    assert swap.loading == "" and swap.error == "loading ckpt-b failed: no such folder"
    assert swap.take(old) is old  # the old policy keeps running
    swap.load(lambda: new, "ckpt-c").result(timeout=5)
    assert swap.error == ""  # a new load clears the old error
