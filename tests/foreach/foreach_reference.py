"""Naive references and ulp measurement for the foreach tests.

References: float32 results are compared with the same function evaluated in float64 (NumPy's
float64 functions are within 1 ulp of float64, i.e. 2**-29 float32 ulp); float64 results with the
function evaluated in x86-64 long double (64-bit significand: 2**-11 float64 ulp).  erf, erfc and
lgamma, which NumPy does not have, use mpmath at 40 digits, rounded to long double.
"""

from __future__ import annotations

import math

import numpy as np

LD = np.longdouble


def sigmoid_ref(x: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _to_longdouble(value) -> np.longdouble:
    """An mpmath number rounded to long double; below long double's range it is 0."""
    import mpmath

    if value != 0 and abs(value) < mpmath.mpf("1e-4940"):
        return np.longdouble(0.0) if value > 0 else -np.longdouble(0.0)
    return np.longdouble(mpmath.nstr(value, 30))


def _mp(fn_name: str):
    import mpmath

    def f(x: np.ndarray) -> np.ndarray:
        with mpmath.workdps(40):
            fn = getattr(mpmath, fn_name)
            out = []
            for v in x.astype(np.float64).tolist():
                if math.isnan(v):
                    out.append(math.nan)
                    continue
                out.append(_to_longdouble(fn(mpmath.mpf(v))))
            return np.array(out, dtype=np.longdouble)

    return f


def _mp_lgamma(x: np.ndarray) -> np.ndarray:
    import mpmath

    out = []
    with mpmath.workdps(40):
        for v in x.astype(np.float64).tolist():
            if math.isnan(v):
                out.append(math.nan)
            elif v <= 0 and v == int(v):
                out.append(math.inf)
            else:
                out.append(_to_longdouble(mpmath.log(abs(mpmath.gamma(mpmath.mpf(v))))))
    return np.array(out, dtype=np.longdouble)


#: op name -> reference function evaluated at higher precision.
REFERENCES = {
    "log1p": np.log1p,
    "log": np.log,
    "log2": np.log2,
    "log10": np.log10,
    "exp": np.exp,
    "expm1": np.expm1,
    "sigmoid": sigmoid_ref,
    "tanh": np.tanh,
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "asin": np.arcsin,
    "acos": np.arccos,
    "atan": np.arctan,
    "sinh": np.sinh,
    "cosh": np.cosh,
    "sqrt": np.sqrt,
    "rsqrt": lambda x: 1 / np.sqrt(x),
    "erf": _mp("erf"),
    "erfc": _mp("erfc"),
    "lgamma": _mp_lgamma,
}

#: ops whose reference is mpmath (slow): tested on fewer points.
MPMATH_OPS = frozenset({"erf", "erfc", "lgamma"})


def reference(name: str, x: np.ndarray) -> np.ndarray:
    """The op at higher precision than ``x.dtype`` (float64 for float32, long double for float64)."""
    with np.errstate(all="ignore"):
        if name in MPMATH_OPS:
            # long double from a 40-digit evaluation (values beyond its range become 0 or inf)
            return REFERENCES[name](x)
        wide = np.float64 if x.dtype == np.float32 else LD
        return REFERENCES[name](x.astype(wide))


def ulp_error(y: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``|y - ref|`` in units of the spacing of ``ref`` rounded to ``y.dtype``.

    Where ``ref`` is finite but rounds to inf in ``y.dtype`` the error is 0 if ``y`` is that inf.
    Subnormal spacing is the smallest subnormal.  Non-finite references are not measured here
    (they are checked for exact agreement separately).
    """
    dt = y.dtype
    with np.errstate(all="ignore"):
        rr = ref.astype(dt)
        spacing = np.maximum(np.spacing(np.abs(rr)), np.finfo(dt).smallest_subnormal).astype(ref.dtype)
        err = np.abs(y.astype(ref.dtype) - ref) / spacing
    err = np.where(np.isinf(rr) & (y == rr), 0.0, err)
    return np.where(np.isfinite(ref), err, 0.0)


def sample_inputs(rng: np.random.Generator, dtype: type, name: str, n: int) -> np.ndarray:
    """Points spread over many magnitudes, restricted to the op's domain, plus subnormals."""
    dt = np.dtype(dtype)
    scales = [1e-30, 1e-8, 1e-3, 0.1, 0.5, 1.0, 3.0, 10.0, 30.0, 100.0, 700.0, 1e5, 1e30, 1e300]
    with np.errstate(all="ignore"):
        x = np.concatenate([rng.standard_normal(n) * s for s in scales]).astype(dt)
    x = x[np.isfinite(x)]
    tiny = (rng.random(n // 10 + 1) * np.finfo(dt).smallest_normal).astype(dt)
    x = np.concatenate([x, tiny, -tiny, (rng.random(n) * 2 - 1).astype(dt)])
    if name in ("log", "log2", "log10", "sqrt", "rsqrt"):
        x = np.abs(x)
    elif name == "log1p":
        x = np.concatenate([np.abs(x), np.abs(x) - 1, x[x > -1]])
        x = x[x > -1]
    elif name in ("asin", "acos"):
        x = x[np.abs(x) <= 1]
    elif name in ("sinh", "cosh"):
        x = x[np.abs(x) < (88 if dt == np.float32 else 709)]
    elif name in MPMATH_OPS:
        x = x[np.abs(x) < 1e4]
    elif name in ("sin", "cos", "tan"):
        x = x[np.abs(x) < 1e5]  # NumPy's float32 SIMD range reduction is documented for moderate |x|
    return x.astype(dt)


SPECIALS = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 2.0, -2.0, 0.5, 1e-45, -1e-45, 1e-310, 100.0, -100.0, 1e38, -1e38, 1e308]


def special_values(dtype: type) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.array(SPECIALS, dtype=np.float64).astype(dtype)
