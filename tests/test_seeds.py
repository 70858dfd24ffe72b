"""Every softmax example in ../shared/seeds/ run with softmaxkit, as regression tests.

Each test is named after the mistake (or the pitfall) in the seed that it pins. Expected values are
the seeds' own printed numbers where those are right (checked at the precision printed) and the
naive reference in ``tests/naive.py`` everywhere.

Seeds: 000 a Japanese torch.softmax tutorial, 001 a Japanese NumPy/TF/SciPy/torch tutorial,
002 a Chinese torch softmax tutorial, 003 a (translated) Stack Overflow thread on NumPy softmax.
"""

from __future__ import annotations

import numpy as np
import pytest

import softmaxkit as sk
from naive import log_softmax_ref, softmax_ref

# exact values rounded to float64 (mpmath: [float(v) for v in naive.softmax_mpmath([1, 2, 3])])
ROW_123 = [0.09003057317038046, 0.24472847105479764, 0.6652409557748219]


def _close(actual, expected, rtol):
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), expected, rtol=rtol, atol=0)


def _printed(actual, printed, decimals=8):
    """``actual`` agrees with numbers a seed printed with ``decimals`` places (fixed notation).

    Within half a unit of the last printed place; float32 results also get their own rounding
    (4 ulp) as slack, since the seed may have printed a float64 computation.
    """
    actual = np.asarray(actual)
    slack = 4 * float(np.finfo(actual.dtype).eps) if actual.dtype.kind == "f" else 0.0
    a = actual.astype(np.float64)
    p = np.asarray(printed, dtype=np.float64)
    bound = 0.5 * 10.0**-decimals * (1 + 1e-6) + slack * np.abs(p)
    assert np.all(np.abs(a - p) <= bound), (a, p, np.abs(a - p) - bound)


def _printed_sci(actual, printed, digits=8):
    """Like :func:`_printed` for numbers printed as d.dddddddde-XX (``digits`` after the point)."""
    actual = np.asarray(actual)
    slack = 4 * float(np.finfo(actual.dtype).eps) if actual.dtype.kind == "f" else 0.0
    a = actual.astype(np.float64)
    p = np.asarray(printed, dtype=np.float64)
    unit = 10.0 ** (np.floor(np.log10(np.abs(p))) - digits)  # last printed place
    bound = 0.5 * unit * (1 + 1e-6) + slack * np.abs(p)
    assert np.all(np.abs(a - p) <= bound), (a, p, np.abs(a - p) - bound)


# --------------------------------------------------------------------------------------------
# seed 000 (torch.softmax tutorial, Japanese)
# --------------------------------------------------------------------------------------------

SEED000_INPUT = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
# The numbers the tutorial claims torch.softmax(input, dim=1) prints. They are wrong: rows do not
# even follow the order of their inputs (0.3976 > 0.3536 although 2 < 3).
SEED000_PRINTED = [[0.24881134, 0.39762192, 0.35356674], [0.18263991, 0.26894142, 0.54841867]]


def test_seed000_tutorial_prints_wrong_numbers_for_dim1():
    for x in (np.array(SEED000_INPUT), np.array(SEED000_INPUT, np.float32)):
        r = sk.softmax(x, axis=1)
        assert r.dtype == x.dtype
        _close(r, [ROW_123, ROW_123], rtol=2e-7)
        np.testing.assert_allclose(np.round(r.astype(np.float64), 4),
                                   [[0.0900, 0.2447, 0.6652]] * 2)
        assert not np.allclose(r, SEED000_PRINTED, atol=1e-3)
        np.testing.assert_allclose(r.sum(axis=1), 1.0, rtol=1e-6)


def test_seed000_softmax_is_shift_invariant_so_every_row_is_the_same():
    # [4, 5, 6] is [1, 2, 3] + 3: the printed second row differing from the first is impossible.
    r = sk.softmax(np.array(SEED000_INPUT), axis=1)
    np.testing.assert_allclose(r[0], r[1], rtol=4 * 2.0**-52)


def test_seed000_three_d_input_along_dim2():
    x = np.array([[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], [[7.0, 8.0, 9.0], [10.0, 11.0, 12.0]]])
    r = sk.softmax(x, axis=2)
    assert r.shape == (2, 2, 3)
    _close(r, np.broadcast_to(ROW_123, (2, 2, 3)), rtol=4e-16)
    np.testing.assert_array_equal(sk.softmax(x, axis=-1), r)


def test_seed000_custom_softmax_without_max_shift_agrees_only_for_small_inputs():
    def my_softmax(a, dim=-1):  # the tutorial's custom function, in NumPy
        e = np.exp(np.swapaxes(a, dim, -1))
        return np.swapaxes(e / e.sum(axis=-1, keepdims=True), dim, -1)

    x = np.array(SEED000_INPUT)
    np.testing.assert_allclose(sk.softmax(x, axis=1), my_softmax(x, 1), rtol=1e-15)
    # without the max shift it overflows for logits around 1000; softmaxkit does not
    big = x * 300
    with np.errstate(over="ignore", invalid="ignore"):
        assert np.isnan(my_softmax(big, 1)).any()
    r = sk.softmax(big, axis=1)
    assert np.isfinite(r).all()
    np.testing.assert_allclose(r, softmax_ref(big, 1, compute=np.longdouble), rtol=1e-15,
                               atol=1e-300)


def test_seed000_log_softmax_then_exp_gives_the_probabilities():
    x = np.array(SEED000_INPUT)
    logp = sk.log_softmax(x, axis=1)
    # log-probabilities near 0 are judged in ulps of 1 (policy: 4 * eps absolute)
    np.testing.assert_allclose(logp, [np.log(ROW_123)] * 2, rtol=4e-16, atol=4 * 2.0**-52)
    _close(logp[0], [-2.40760596444438, -1.40760596444438, -0.40760596444438], rtol=1e-14)
    np.testing.assert_allclose(np.exp(logp), sk.softmax(x, axis=1), rtol=1e-15)


def test_seed000_numpy_has_no_softmax_function():
    # The tutorial's NumPy alternative calls np.softmax, which does not exist (and jnp.softmax,
    # which is jax.nn.softmax). softmaxkit.softmax is the NumPy function it wanted.
    assert not hasattr(np, "softmax")
    input_numpy = np.array(SEED000_INPUT, dtype=np.float32)  # what input.numpy() returns
    r = sk.softmax(input_numpy, axis=1)
    assert r.dtype == np.float32 and r.shape == (2, 3)
    _close(r, [ROW_123] * 2, rtol=2e-7)


def test_seed000_torch_tensor_numpy_roundtrip():
    torch = pytest.importorskip("torch")
    inp = torch.tensor(SEED000_INPUT)
    out = torch.from_numpy(sk.softmax(inp.numpy(), axis=1))
    torch.testing.assert_close(out, torch.softmax(inp, dim=1), rtol=2e-7, atol=0)


# --------------------------------------------------------------------------------------------
# seed 001 (NumPy / TensorFlow / SciPy / torch tutorial, Japanese)
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("vector, printed, scientific", [
    ([1.0, 3.0, 2.0], [0.09003057, 0.66524096, 0.24472847], False),
    ([5.5, -13.2, 0.5], [9.93307142e-01, 7.51236614e-09, 6.69285087e-03], True),
    ([1.5, -3.5, 2.0], [0.3765827, 0.00253739, 0.62087991], False),
], ids=["numpy", "tensorflow", "scipy"])
def test_seed001_tutorial_vectors(vector, printed, scientific):
    for dtype in (np.float64, np.float32):
        r = sk.softmax(np.array(vector, dtype))
        assert r.dtype == dtype
        if scientific:
            _printed_sci(r, printed)
        else:
            _printed(r, printed)
        _close(r, softmax_ref(vector), rtol=4 * float(np.finfo(dtype).eps))


def test_seed001_naive_exp_over_sum_matches_only_while_exp_does_not_overflow():
    def softmax_naive(vec):  # the tutorial's implementation
        exponential = np.exp(vec)
        return exponential / np.sum(exponential)

    v = np.array([1.0, 3.0, 2.0])
    np.testing.assert_allclose(sk.softmax(v), softmax_naive(v), rtol=1e-15)
    v = np.array([1.0, 3.0, 2.0], np.float32) + np.float32(88)  # exp(91) overflows float32
    with np.errstate(over="ignore", invalid="ignore"):
        assert np.isnan(softmax_naive(v)).any()
    _close(sk.softmax(v), [0.09003057, 0.66524096, 0.24472847], rtol=1e-5)


def test_seed001_torch_nn_softmax_dim_minus1_float32():
    r = sk.softmax(np.array([1.5, -3.5, 2.0], np.float32), axis=-1)
    np.testing.assert_array_equal(np.round(r, 4), np.array([0.3766, 0.0025, 0.6209], np.float32))


# --------------------------------------------------------------------------------------------
# seed 002 (PyTorch softmax, Chinese)
# --------------------------------------------------------------------------------------------

ROW_1234 = [0.03205860328008499, 0.08714431874203257, 0.23688281808991013, 0.6439142598879724]


def test_seed002_one_d_input():
    r = sk.softmax(np.array([1.0, 2, 3, 4], np.float32), axis=0)
    np.testing.assert_array_equal(np.round(r, 4), np.array([0.0321, 0.0871, 0.2369, 0.6439],
                                                            np.float32))
    _close(r, ROW_1234, rtol=2e-7)
    # F.softmax(input_0) with no dim: softmaxkit's default (the last axis) is the same for 1-D
    np.testing.assert_array_equal(sk.softmax(np.array([1.0, 2, 3, 4], np.float32)), r)


def test_seed002_dim0_is_down_the_columns_and_dim1_along_the_rows():
    # The tutorial says "dim=0 means rows, dim=1 means columns"; its outputs show the opposite
    # reading: dim=0 normalises each column, dim=1 each row.
    x = np.array([[1.0, 2, 3, 4], [5, 6, 7, 8]], np.float32)
    r1 = sk.softmax(x, axis=1)
    _close(r1, [ROW_1234, ROW_1234], rtol=2e-7)
    np.testing.assert_allclose(r1.sum(axis=1), 1.0, rtol=2e-7)
    r0 = sk.softmax(x, axis=0)
    small = 1 / (1 + np.exp(4.0))  # 0.01798620996209156
    _close(r0, [[small] * 4, [1 - small] * 4], rtol=2e-7)
    np.testing.assert_array_equal(np.round(r0, 4), np.array([[0.0180] * 4, [0.9820] * 4],
                                                            np.float32))
    np.testing.assert_allclose(r0.sum(axis=0), 1.0, rtol=2e-7)


def test_seed002_hand_computation_rounds_intermediates():
    # The tutorial divides rounded exponentials (0.05, 4.48, 14.88) and prints 0.2308 for the
    # middle class; exp(1.5) / (exp(-3) + exp(1.5) + exp(2.7)) is 0.230882, i.e. 0.2309.
    r = sk.softmax(np.array([-3, 1.5, 2.7]))
    _close(r, [0.002564861945622631, 0.2308815145268242, 0.7665536235275532], rtol=4.5e-16)
    np.testing.assert_array_equal(np.round(r, 4), [0.0026, 0.2309, 0.7666])
    assert r.sum() == pytest.approx(1.0, rel=4e-16)


def test_seed002_segmentation_softmax_over_channel_dim():
    # out = F.softmax(x, dim=1) for x of shape (1, C, M, M)
    rng = np.random.default_rng(2)
    x = rng.random((1, 5, 4, 4)).astype(np.float32)
    r = sk.softmax(x, axis=1)
    np.testing.assert_allclose(r.sum(axis=1), 1.0, rtol=4e-7)
    _close(r, softmax_ref(x, 1), rtol=5e-7)


def test_seed002_log_softmax_for_large_numbers_does_not_overflow():
    x = np.array([[1000.0, 1001.0, 1002.0], [-1000.0, 0.0, 1000.0]])
    r = sk.log_softmax(x, axis=1)
    assert np.isfinite(r).all()
    _close(r[0], log_softmax_ref([1.0, 2.0, 3.0]), rtol=4e-16)
    _close(r[1], [-2000.0, -1000.0, 0.0], rtol=4e-16)


# --------------------------------------------------------------------------------------------
# seed 003 (Stack Overflow: "how to implement softmax in NumPy", translated)
# --------------------------------------------------------------------------------------------

SCORES = [3.0, 1.0, 0.2]
SCORES_PRINTED = [0.8360188, 0.11314284, 0.05083836]
SCORES2D = np.array([[1, 2, 3, 6], [2, 4, 5, 6], [3, 8, 7, 6]])
X1 = np.array([[1, 2, 3, 6]])
X2 = np.array([[1, 2, 3, 6], [2, 4, 5, 6], [1, 2, 3, 6]])
X1_ROW = [0.00626879, 0.01704033, 0.04632042, 0.93037047]
X2_ROW1 = [0.01203764, 0.08894682, 0.24178252, 0.65723302]


def test_seed003_one_d_scores():
    r = sk.softmax(SCORES)
    _printed(r, SCORES_PRINTED)
    _close(r, softmax_ref(SCORES), rtol=4e-16)
    # the question's two formulas are the same for 1-D input
    _close(r, np.exp(SCORES) / np.sum(np.exp(SCORES), axis=0), rtol=4e-16)


def test_seed003_sum_over_axis0_is_wrong_for_batches():
    # desertnaut's answer sums over axis 0: right for the Udacity quiz, where each *column* is a
    # sample, wrong for a batch of row samples. softmaxkit makes the axis explicit.
    cols = sk.softmax(SCORES2D, axis=0)
    _printed(cols, [[0.09003057, 0.00242826, 0.01587624, 0.33333333],
                    [0.24472847, 0.01794253, 0.11731043, 0.33333333],
                    [0.66524096, 0.97962921, 0.86681333, 0.33333333]])
    np.testing.assert_allclose(cols.sum(axis=0), 1.0, rtol=4e-16)
    rows = sk.softmax(X2, axis=1)
    _printed(rows, [X1_ROW, X2_ROW1, X1_ROW])
    assert not np.allclose(sk.softmax(X2, axis=0), rows)
    _printed(sk.softmax(X2, axis=0), [[0.21194156, 0.10650698, 0.10650698, 0.33333333],
                                       [0.57611688, 0.78698604, 0.78698604, 0.33333333],
                                       [0.21194156, 0.10650698, 0.10650698, 0.33333333]])


def test_seed003_global_max_and_global_sum_normalise_the_whole_batch():
    # The asker's your_softmax uses np.max(x) and e_x.sum() over every element: that is softmax
    # with axis=None, not one distribution per sample.
    _printed_sci(sk.softmax(SCORES2D, axis=None),
                 [[4.89907947e-04, 1.33170787e-03, 3.61995731e-03, 7.27087861e-02],
                  [1.33170787e-03, 9.84006416e-03, 2.67480676e-02, 7.27087861e-02],
                  [3.61995731e-03, 5.37249300e-01, 1.97642972e-01, 7.27087861e-02]])
    _printed(sk.softmax(X2, axis=None),
             [[0.00183535, 0.00498899, 0.01356148, 0.27238963],
              [0.00498899, 0.03686393, 0.10020655, 0.27238963],
              [0.00183535, 0.00498899, 0.01356148, 0.27238963]])


def test_seed003_axis0_on_a_single_row_batch_gives_all_ones():
    # desertnaut_softmax(x1) printed [[1, 1, 1, 1]]: a 1 x 4 batch normalised down its columns.
    np.testing.assert_array_equal(sk.softmax(X1, axis=0), np.ones((1, 4)))
    _printed(sk.softmax(X1), [X1_ROW])


def test_seed003_batch_rows_equal_the_single_sample_result():
    # softmax(x1) == softmax(x2)[0] and [2], exactly, as the answer shows: a row's result does not
    # depend on the rest of the batch.
    one = sk.softmax(X1)
    batch = sk.softmax(X2)
    np.testing.assert_array_equal(batch[0], one[0])
    np.testing.assert_array_equal(batch[2], one[0])
    _printed(batch[1], X2_ROW1)
    # TensorFlow's float32 result printed for the same batch
    b32 = sk.softmax(X2.astype(np.float32))
    assert b32.dtype == np.float32
    _printed(b32, [[0.00626879, 0.01704033, 0.04632042, 0.93037045],
                   [0.01203764, 0.08894681, 0.24178252, 0.657233],
                   [0.00626879, 0.01704033, 0.04632042, 0.93037045]])
    np.testing.assert_array_equal(b32[0], b32[2])


def test_seed003_one_d_vs_two_d_input():
    # the same numbers as a 1-D vector and as a 1 x n batch
    v = np.array([1.0, 2, 3, 6])
    np.testing.assert_array_equal(sk.softmax(v), sk.softmax(v[None, :])[0])
    np.testing.assert_array_equal(sk.softmax(v), sk.softmax(v[:, None], axis=0)[:, 0])


def test_seed003_overflow_1000_and_5_gives_finite_correct_probabilities():
    x = np.array([1000, 5])
    with np.errstate(over="ignore", invalid="ignore"):
        naive = np.exp(x) / np.exp(x).sum()
    assert np.isnan(naive).any()  # the unshifted formula: inf / inf
    r = sk.softmax(x)
    assert r.dtype == np.float64
    np.testing.assert_array_equal(r, [1.0, 0.0])  # exp(-995) underflows to 0 in float64
    lr = sk.log_softmax(x)
    _close(lr, [0.0, -995.0], rtol=4e-16)
    r32 = sk.softmax(np.array([1000, 5], np.float32))
    np.testing.assert_array_equal(r32, np.array([1.0, 0.0], np.float32))
    assert sk.logsumexp(x) == 1000.0


def test_seed003_theta_is_inverse_temperature():
    def nolan_softmax(X, theta=1.0, axis=None):  # the answer's function (axis given explicitly)
        y = np.atleast_2d(X) * float(theta)
        y = y - np.expand_dims(np.max(y, axis=axis), axis)
        y = np.exp(y)
        return y / np.expand_dims(np.sum(y, axis=axis), axis)

    for theta in (1.0, 2.5, 0.1, 4.0):
        for axis in (0, 1):
            np.testing.assert_allclose(sk.softmax(X2, axis=axis, temperature=1 / theta),
                                       nolan_softmax(X2, theta, axis), rtol=1e-13)
    # softmax's temperature divides: theta = 1 / temperature
    np.testing.assert_allclose(sk.softmax(X2, temperature=0.5), sk.softmax(2.0 * X2), rtol=1e-15)


def test_seed003_axis_none_means_all_elements_not_first_non_singleton_axis():
    # The answer's softmax(X, axis=None) picks the first axis longer than 1; softmaxkit's axis=None
    # means every element (like scipy.special.softmax).
    x = np.array([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]])  # shape (1, 3, 2)
    r = sk.softmax(x, axis=None)
    assert r.sum() == pytest.approx(1.0, rel=4e-16)
    assert not np.allclose(r, sk.softmax(x, axis=1))


def test_seed003_logits_np_example():
    np.random.seed(2019)  # the answer writes np.random.Rand, a typo for np.random.rand
    logits_np = np.random.rand(1, 3, 2).astype(np.float32)
    np.testing.assert_array_equal(
        logits_np,
        np.array([[[0.9034822, 0.3930805], [0.62397, 0.6378774], [0.88049906, 0.299172]]],
                 np.float32),
    )
    scores = sk.softmax(logits_np, axis=-1)
    assert scores.shape == (1, 3, 2) and scores.dtype == np.float32
    _printed(scores, [[[0.62490064, 0.37509936], [0.4965232, 0.5034768],
                       [0.64137274, 0.3586273]]])
    np.testing.assert_allclose(np.sum(scores, axis=-1), 1.0, rtol=2.4e-7)
    assert np.sum(scores, axis=-1).shape == (1, 3)


def test_seed003_exp_of_x_minus_logsumexp():
    x = np.array(SCORES)
    np.testing.assert_allclose(np.exp(x - sk.logsumexp(x)), sk.softmax(x), rtol=4e-16)
    # for a batch, logsumexp must reduce per row (keepdims) -- the default axis=None would
    # normalise the whole batch
    r = np.exp(X2 - sk.logsumexp(X2, axis=-1, keepdims=True))
    np.testing.assert_allclose(r, sk.softmax(X2), rtol=1e-15)
    np.testing.assert_allclose(np.exp(X2 - sk.logsumexp(X2)), sk.softmax(X2, axis=None),
                               rtol=1e-15)


def test_seed003_sum_without_keepdims_broadcasts_along_the_wrong_axis():
    # softmax_fn: e_x / e_x.sum(axis=len(e_x.shape)-1) divides row i's entries by the sums of
    # *other* rows when the batch is square; nothing errors. softmaxkit's rows sum to 1.
    x = np.array([[1.0, 2.0, 3.0], [3.0, 10.0, 1.0], [1.0, 2.0, 5.0]])
    e_x = np.exp(x - np.max(x))
    wrong = e_x / e_x.sum(axis=len(e_x.shape) - 1)
    assert not np.allclose(wrong.sum(axis=1), 1.0)
    r = sk.softmax(x)
    np.testing.assert_allclose(r.sum(axis=1), 1.0, rtol=4e-16)


def test_seed003_inplace_answer_mutates_the_callers_array():
    # One answer does x -= max; x = exp(x); x /= sum, overwriting the caller's logits.
    x = np.array([[3.0, 2, 4], [4, 5, 6]])
    keep = x.copy()
    r = sk.softmax(x)
    np.testing.assert_array_equal(x, keep)
    _printed(r, [[0.24472847, 0.09003057, 0.66524096], [0.09003057, 0.24472847, 0.66524096]])
    # int input works too (the in-place answer raises for ints: x -= float)
    _close(sk.softmax(np.array([[3, 2, 4], [4, 5, 6]])), r, rtol=0)


def test_seed003_tensorflow_dense_layer_logits():
    logits = np.asarray([[-0.0052024, -0.00770216, 0.01360943, -0.008921]] * 2)
    _printed(sk.softmax(logits, axis=-1), [[0.2492037, 0.24858153, 0.25393605, 0.24827873]] * 2)


def test_seed003_transpose_trick_equals_rowwise_softmax():
    logits = np.array([[1, 2, 3], [3, 10, 1], [1, 2, 5], [4, 6.5, 1.2], [3, 6, 1]])
    e_x = np.exp(logits.T - np.max(logits, axis=-1))
    trick = (e_x / e_x.sum(axis=0)).T
    np.testing.assert_allclose(sk.softmax(logits), trick, rtol=1e-15)
    np.testing.assert_allclose(sk.softmax(logits), softmax_ref(logits, -1, compute=np.longdouble),
                               rtol=4e-16)


def test_seed003_sklearn_example():
    x = np.array([[0.50839931, 0.49767588, 0.51260159]])
    _printed(sk.softmax(x), [[0.3340521, 0.33048906, 0.33545884]])


def test_seed003_scipy_softmax_agrees():
    special = pytest.importorskip("scipy.special")
    np.testing.assert_allclose(sk.softmax(SCORES2D, axis=0), special.softmax(SCORES2D, axis=0),
                               rtol=1e-15)
