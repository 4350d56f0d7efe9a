"""The curves keep every step row received in a buffer that grows in place, and the epoch
records' numbers in a table updated by the new records only."""

from types import SimpleNamespace

import numpy as np

from gradient_lab.app.views.curves_view import EpochTable, RowBuffer


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


def _snap(new_epochs, reset=False, replaced=None):
    """A stand-in for a snapshot's epoch delivery (the real merge rule, a snapshot's fields)."""
    from gradient_lab.engine.service.snapshot import Snapshot

    return SimpleNamespace(
        history_reset=reset,
        new_epochs=tuple(new_epochs),
        replaced_epoch_step=replaced,
        merge_epochs=lambda records: Snapshot.merge_epochs(
            SimpleNamespace(
                history_reset=reset, new_epochs=tuple(new_epochs), replaced_epoch_step=replaced
            ),
            records,
        ),
    )


def _rebuilt(records):
    """The table as reading every record again gives it."""
    keys = sorted({k for r in records for k in r if k.startswith(("train_", "val_"))})
    return keys, np.array(
        [[r["step"], *(r.get(k, np.nan) for k in keys)] for r in records], dtype=float
    ).reshape(len(records), 1 + len(keys))


def test_epoch_table_follows_added_replaced_and_reset_records_as_a_full_reread_would():
    table = EpochTable()
    deliveries = [
        _snap([{"step": 10, "train_loss": 1.0}]),
        _snap([{"step": 20, "train_loss": 0.8}, {"step": 30, "train_loss": 0.7}]),
        _snap([{"step": 35, "train_loss": 0.6, "val_loss": 0.9}]),  # a new key: a new column
        _snap([{"step": 40, "train_loss": 0.5, "val_loss": 0.8}], replaced=35),  # 35 replaced
        _snap([]),
        _snap([{"step": 5, "train_loss": 2.0}], reset=True),  # a rewind: the whole history
        _snap([{"step": 6, "train_loss": 1.9, "train_accuracy": 0.5}]),
    ]
    for snap in deliveries:
        table.add(snap)
        keys, expected = _rebuilt(table.records)
        assert table.keys == keys
        np.testing.assert_array_equal(table.steps, expected[:, 0])
        for i, key in enumerate(keys):
            np.testing.assert_array_equal(table.column(key), expected[:, 1 + i])
    assert [r["step"] for r in table.records] == [5, 6]
