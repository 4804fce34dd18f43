import numpy as np
import pytest
from numpy.testing import assert_array_equal

from fastres.metrics import confusion_matrix, per_class_accuracy, top_k_accuracy, top_k_correct

LOGITS = np.array([[3.0, 1.0, 2.0], [0.0, 1.0, 2.0], [5.0, 4.0, 3.0], [1.0, 1.0, 0.0]])
LABELS = np.array([0, 0, 2, 1])


def test_top_k():
    assert top_k_accuracy(LOGITS, LABELS, 1) == 0.5  # rows 0 and 3 (a tie counts)
    assert top_k_accuracy(LOGITS, LABELS, 2) == 0.5
    assert top_k_correct(LOGITS, LABELS, (1, 3, 5)) == [2, 4, 4]



def test_a_row_with_nan_logits_is_never_correct():
    # every comparison with NaN is false, so such a row would rank its label first: a model
    # whose weights went NaN scored top-1 1.0
    logits = LOGITS.copy()
    logits[0, 1] = np.nan
    logits[3] = np.nan
    assert top_k_correct(logits, LABELS, (1, 3, 5)) == [0, 2, 2]

def test_confusion_and_per_class():
    pred = np.array([0, 2, 0, 1])
    cm = confusion_matrix(LABELS, pred)
    assert_array_equal(cm, [[1, 0, 1], [0, 1, 0], [1, 0, 0]])
    assert_array_equal(per_class_accuracy(LABELS, pred), [0.5, 1.0, 0.0])
    pc = per_class_accuracy(LABELS, pred, num_classes=4)
    assert np.isnan(pc[3])


def test_errors():
    with pytest.raises(ValueError, match=r"top_k_correct: expected logits of shape \(N, K\)"):
        top_k_correct(np.zeros(3), LABELS)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        top_k_correct(LOGITS, np.array([0, 1, 2, 3]))
    with pytest.raises(TypeError, match="confusion_matrix: expected integer"):
        confusion_matrix(LABELS.astype(float), LABELS)
    with pytest.raises(TypeError, match="confusion_matrix: expected num_classes to be an int"):
        confusion_matrix(LABELS, LABELS, num_classes=2.7)  # not truncated to 2
    with pytest.raises(TypeError, match="confusion_matrix: expected integer"):
        confusion_matrix(np.zeros(2), np.zeros(2))
    with pytest.raises(ValueError, match="confusion_matrix: class indices"):
        confusion_matrix(LABELS, LABELS, num_classes=2)
