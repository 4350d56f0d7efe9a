"""The curves keep every step row received in a buffer that grows in place."""

import numpy as np

from gradient_lab.app.views.curves_view import RowBuffer


def test_rows_appended_across_growth_are_every_row_in_order():
    rng = np.random.default_rng(0)
    buffer, pieces = RowBuffer(), []
    for size in [0, 5, 1000, 30, 3000, 1, 70]:
        piece = rng.normal(size=(size, 3))
        pieces.append(piece)
        before = buffer.rows
        copy = before.copy()
        buffer.extend(piece)
        np.testing.assert_array_equal(before, copy)  # rows handed out stay as they were
        np.testing.assert_array_equal(buffer.rows, np.concatenate(pieces))
