"""A label whose size only grows: text changing at every frame asks for no new layout."""

from PySide6 import QtGui

from gradient_lab.app.steady_label import SteadyLabel


def test_fits_its_template_widens_for_wider_text_and_never_narrows(qtbot):
    label = SteadyLabel("step 1", "step 999 of 999")
    qtbot.addWidget(label)
    fixed = label.width()
    assert label.minimumSize() == label.maximumSize()  # fixed: a new text lays nothing out
    assert fixed >= label.fontMetrics().horizontalAdvance("step 999 of 999")
    label.setText("step 2 of 2")
    assert label.width() == fixed
    wide = "step 1,234,567 of 1,234,567, and a good deal more"
    label.setText(wide)
    assert label.width() >= label.fontMetrics().horizontalAdvance(wide) > fixed
    widened = label.width()
    label.setText(wide + "0")  # a digit more: room was left for it
    assert label.width() == widened
    label.setText("step 3")
    assert label.width() == widened


def test_a_larger_font_fits_the_template_again(qtbot):
    label = SteadyLabel("step 1", "step 999 of 999")
    qtbot.addWidget(label)
    small = label.width()
    font = QtGui.QFont(label.font())
    font.setPointSizeF(font.pointSizeF() * 2)
    label.setFont(font)
    assert label.width() > 1.5 * small
    assert label.width() >= label.fontMetrics().horizontalAdvance("step 999 of 999")
