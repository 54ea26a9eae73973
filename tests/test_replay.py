import numpy as np
import pytest

from medaka_heart.io.replay import replayable


def _counting(n_chunks=3, shape=(4, 8, 8)):
    reads = []

    def chunks():
        reads.append(1)
        for i in range(n_chunks):
            yield np.full(shape, i, np.uint8)

    return chunks, reads


def test_a_second_read_replays_the_first_from_memory():
    chunks, reads = _counting()
    read = replayable(chunks, budget_bytes=10_000)
    first = [c.copy() for c in read()]
    second = list(read())
    assert len(reads) == 1  # decoded once
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="read-only"):
        second[0][0, 0, 0] = 9


def test_chunks_over_the_budget_are_decoded_again():
    chunks, reads = _counting()  # 3 chunks of 256 bytes
    read = replayable(chunks, budget_bytes=600)
    assert [int(c[0, 0, 0]) for c in read()] == [0, 1, 2]
    assert [int(c[0, 0, 0]) for c in read()] == [0, 1, 2]
    assert len(reads) == 2


def test_an_unfinished_read_is_not_replayed():
    chunks, reads = _counting()
    read = replayable(chunks, budget_bytes=10_000)
    next(iter(read()))  # stops after the first chunk
    assert [int(c[0, 0, 0]) for c in read()] == [0, 1, 2]
    assert [int(c[0, 0, 0]) for c in read()] == [0, 1, 2]
    assert len(reads) == 2


def _first_chunk_held(read) -> bool:
    """Whether `read` still holds the first chunk after the consumer let go of it and took
    the second."""
    import gc
    import weakref

    items = read()
    first = weakref.ref(next(items))
    next(items)
    gc.collect()
    held = first() is not None
    list(items)
    return held


def test_a_video_too_long_to_fit_keeps_nothing_from_its_first_chunk():
    chunks, reads = _counting(n_chunks=3)  # 256-byte chunks of 4 frames: 768 bytes in all
    assert not _first_chunk_held(replayable(chunks, budget_bytes=600, n_frames=12))
    assert _first_chunk_held(replayable(chunks, budget_bytes=600))  # count unknown: held
    fits = replayable(chunks, budget_bytes=800, n_frames=12)
    assert _first_chunk_held(fits)
    list(fits())
    assert len(reads) == 3  # the video that fits was decoded once
