"""The clear-sky mask and the merge of one solar day's scenes, on small arrays whose
outcome is written out by hand."""

from __future__ import annotations

import numpy as np

from tilefleet.ops.clear_sky import DEFAULT_SCL_MASK, clear_sky
from tilefleet.ops.day_merge import merge_first_valid

# Every Scene Classification Layer class, 0 (no data) to 11 (snow), on a 3 x 4 strip.
SCL_CLASSES = np.arange(12, dtype=np.uint8).reshape(3, 4)


def test_the_default_classes_mask_no_data_defects_shadows_clouds_and_cirrus():
    clear = clear_sky(SCL_CLASSES, np.array(DEFAULT_SCL_MASK, dtype=np.int64))
    assert clear.dtype == bool and clear.shape == SCL_CLASSES.shape
    # 2 dark area, 4 vegetation, 5 bare soil, 6 water, 7 unclassified, 11 snow.
    assert np.flatnonzero(clear).tolist() == [2, 4, 5, 6, 7, 11]


def test_a_job_may_mask_snow_and_water_too():
    clear = clear_sky(SCL_CLASSES, [*DEFAULT_SCL_MASK, 6, 11])
    assert np.flatnonzero(clear).tolist() == [2, 4, 5, 7]


def test_each_pixel_takes_the_first_scene_valid_there():
    first = (
        np.array([[10, 11, 12], [13, 14, 15]], np.uint16),
        np.array([[1, 0, 0], [1, 0, 0]], bool),
    )
    second = (
        np.array([[20, 21, 22], [23, 24, 25]], np.uint16),
        np.array([[1, 1, 0], [0, 0, 0]], bool),
    )
    third = (
        np.array([[30, 31, 32], [33, 34, 35]], np.uint16),
        np.array([[1, 1, 1], [1, 1, 0]], bool),
    )
    stack = np.zeros((2, 2, 3), np.uint16)  # the day merged is the second of the stack
    valid = np.zeros((2, 2, 3), bool)
    merge_first_valid([first, second, third], out=stack[1], filled=valid[1])
    assert stack[1].tolist() == [[10, 21, 32], [13, 34, 0]]
    assert valid[1].tolist() == [[True, True, True], [True, True, False]]
    assert not stack[0].any() and not valid[0].any()  # the other day is left alone


def test_no_scene_is_drawn_once_the_day_is_whole():
    drawn = []

    def scenes():
        for index, valid in enumerate(
            [[[True, False]], [[False, True]], [[True, True]]]  # the second fills the rest
        ):
            drawn.append(index)
            yield np.full((1, 2), index + 1, np.int16), np.array(valid)

    out, filled = np.zeros((1, 2), np.int16), np.zeros((1, 2), bool)
    merge_first_valid(scenes(), out=out, filled=filled)
    assert out.tolist() == [[1, 2]] and filled.all()
    assert drawn == [0, 1]
