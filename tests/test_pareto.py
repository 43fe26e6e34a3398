"""pareto_front: minimise both coordinates among ok rows, per group."""
import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from harness.pareto import pareto_front


def rows(*points, status="ok", **columns):
    """A frame of (peak_vram_bytes, slowdown) points, all with the given status."""
    frame = pd.DataFrame(points, columns=["peak_vram_bytes", "slowdown"]).assign(status=status)
    return frame.assign(**columns)


def front(frame, **kwargs):
    return pareto_front(frame, **kwargs).tolist()


def test_single_row_is_on_the_front():
    assert front(rows((10, 1.0))) == [True]


def test_dominated_row_is_off():
    assert front(rows((10, 1.0), (4, 1.5), (12, 1.6), (5, 2.0))) == [True, True, False, False]


def test_identical_points_are_all_on_the_front():
    assert front(rows((4, 1.5), (4, 1.5), (10, 1.0))) == [True, True, True]


def test_weakly_dominated_rows_are_off():
    # equal VRAM but slower, equal slowdown but more VRAM
    assert front(rows((4, 1.5), (4, 1.7), (6, 1.5))) == [True, False, False]


def test_failed_rows_never_on_the_front_and_do_not_dominate():
    frame = pd.concat([rows((10, 1.0), (4, 2.0)), rows((1, 0.5), status="oom"), rows((2, 0.5), status="error")])
    assert front(frame) == [True, True, False, False]


def test_missing_values_are_off_the_front():
    assert front(rows((10, 1.0), (2, None), (None, 0.5))) == [True, False, False]


def test_groups_have_their_own_fronts():
    frame = pd.concat([rows((10, 1.0), (12, 2.0), family="a"), rows((12, 2.0), (20, 3.0), family="b")])
    assert front(frame, by=["family"]) == [True, False, True, False]
    assert front(frame) == [True, False, False, False]


def test_other_columns_and_index_are_kept():
    frame = rows((10, 1.0), (4, 1.5), (12, 1.6)).rename(columns={"slowdown": "latency_s"})
    frame.index = [7, 3, 3]
    result = pareto_front(frame, y="latency_s")
    assert list(result.index) == [7, 3, 3] and result.tolist() == [True, True, False]


def test_empty_frame():
    assert front(rows()) == []


def dominates(a, b):
    return a[0] <= b[0] and a[1] <= b[1] and a != b


@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6), st.booleans()), max_size=25))
def test_front_is_exactly_the_undominated_ok_rows(points):
    frame = pd.DataFrame(points, columns=["peak_vram_bytes", "slowdown", "ok"])
    frame["status"] = frame["ok"].map({True: "ok", False: "oom"})
    ok = [(x, y) for x, y, is_ok in points if is_ok]
    expected = [is_ok and not any(dominates(other, (x, y)) for other in ok) for x, y, is_ok in points]
    assert front(frame) == expected
