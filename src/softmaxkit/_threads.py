"""Thread count of the parallel kernels: numba's (``NUMBA_NUM_THREADS`` at start-up)."""

from __future__ import annotations

import operator


def set_num_threads(n: int) -> None:
    """Use ``n`` threads in parallel kernels (1 <= n <= ``NUMBA_NUM_THREADS``).

    Parameters
    ----------
    n : int
        Number of threads for subsequent calls from this thread.

    Raises
    ------
    ValueError
        If ``n`` is out of range.

    Examples
    --------
    >>> import softmaxkit as sk
    >>> sk.set_num_threads(1)
    >>> sk.get_num_threads()
    1
    >>> sk.set_num_threads(sk._threads.max_threads())
    """
    import numba

    n = operator.index(n)
    limit = numba.config.NUMBA_NUM_THREADS
    if not 1 <= n <= limit:
        raise ValueError(f"set_num_threads: n must be between 1 and NUMBA_NUM_THREADS={limit}, got {n}")
    numba.set_num_threads(n)


def get_num_threads() -> int:
    """Number of threads the parallel kernels use (numba's setting).

    Returns
    -------
    int
        The current thread count.

    Examples
    --------
    >>> import softmaxkit as sk
    >>> sk.get_num_threads() >= 1
    True
    """
    import numba

    return numba.get_num_threads()


def max_threads() -> int:
    """``NUMBA_NUM_THREADS``: the most threads ``set_num_threads`` accepts."""
    import numba

    return numba.config.NUMBA_NUM_THREADS
