"""peaks: the same peaks and prominence bases as scipy.signal, whatever the signal."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import find_peaks as scipy_find_peaks
from scipy.signal import peak_prominences

from medaka_heart.peaks import find_peaks, local_maxima, prominence_bases

# few distinct values make plateaus and ties; NaN and infinities where scipy meets them too
values = st.one_of(st.integers(-3, 3).map(float),
                   st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False),
                   st.sampled_from([np.nan, np.inf, -np.inf]))
signals = st.lists(values, min_size=0, max_size=60).map(np.array)


@settings(max_examples=400, deadline=None)
@given(signals, st.one_of(st.none(), st.floats(1.0, 15.0)))
def test_find_peaks_is_scipys(x, distance):
    expected, _ = scipy_find_peaks(x, distance=distance)
    np.testing.assert_array_equal(find_peaks(x, distance=distance), expected)


@settings(max_examples=400, deadline=None)
@given(signals.filter(lambda x: np.isfinite(x).all()))
def test_prominence_bases_are_scipys(x):
    peaks, _ = scipy_find_peaks(x)
    if peaks.size == 0:
        return
    with np.errstate(invalid="ignore"):
        _, left, right = peak_prominences(x, peaks)
    found_left, found_right = prominence_bases(x, peaks)
    np.testing.assert_array_equal(found_left, left)
    np.testing.assert_array_equal(found_right, right)


def test_a_plateau_peaks_in_its_middle_and_the_ends_never_do():
    x = np.array([3, 1, 2, 2, 2, 2, 0, 1, 4.0])
    assert local_maxima(x).tolist() == [3]  # the left middle of the even plateau 2..5
    left, right = prominence_bases(x, np.array([3]))
    assert (left[0], right[0]) == (1, 6)


def test_the_highest_peak_removes_the_lower_ones_near_it():
    x = np.array([0, 1, 0, 3, 0, 2, 0, 0, 0, 1, 0.0])
    assert find_peaks(x).tolist() == [1, 3, 5, 9]
    assert find_peaks(x, distance=3).tolist() == [3, 9]  # 1 and 5 lie within 3 of 3
    with pytest.raises(ValueError, match="at least 1"):
        find_peaks(x, distance=0.5)
    with pytest.raises(ValueError, match="at least 1"):  # as scipy, whatever the peaks
        find_peaks(np.zeros(5), distance=0.5)
    with pytest.raises(ValueError, match="1-D"):
        find_peaks(np.zeros((3, 4)))
