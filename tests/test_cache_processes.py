"""numba's on-disk cache shared by several processes (pytest-xdist's workers, a user's worker pool).

numba's own cache files race (numba issue 10128): two processes saving two signatures of one
function can leave the index mapping one signature to the other's code, which a clean-clone run
of .ci/run met on 2026-12-06 (``_run_ranges``' float32 entry held float64 code).  Our caches save
under a lock and refuse a load compiled for another signature (``_kernels._fastmath``); these
tests make each half of that fail without it.
"""

from __future__ import annotations

import glob
import json
import os
import pickle
import subprocess
import sys
import textwrap
import threading

import pytest

from softmaxkit._kernels import _fastmath, _parallel

_MODULE = textwrap.dedent(
    """
    from softmaxkit._kernels._fastmath import kernel

    @kernel()
    def first_plus_one(x):
        return x[0] + 1.0
    """
)

_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    from module import first_plus_one as f

    x64 = np.array([2.5, 7.0, 9.0, 11.0])
    x32 = np.array([4.5, 7.0, 9.0, 11.0], np.float32)
    results = [float(f(x64)), float(f(x32))]
    print(json.dumps({"results": results, "hits": sum(f.stats.cache_hits.values())}))
    """
)


def _run(tmp_path) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, str(tmp_path / "script.py"), str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _index(tmp_path) -> str:
    (index,) = glob.glob(str(tmp_path / "cache" / "**" / "module.first_plus_one-*.nbi"), recursive=True)
    return index


def test_a_load_of_code_compiled_for_another_signature_is_a_miss(tmp_path):
    # Two signatures compiled and saved; then their index entries swapped, as the race leaves
    # them.  A later process must not be handed float64 code for float32 data (numba's CPython
    # wrapper then refuses the array, as in CI; a RangeKernel callback, called by its address,
    # would read the float32 data as float64): it compiles both again, and its saves mend the
    # index, so that a third process loads both.
    (tmp_path / "module.py").write_text(_MODULE)
    (tmp_path / "script.py").write_text(_SCRIPT)
    assert _run(tmp_path) == {"results": [3.5, 5.5], "hits": 0}

    index = _index(tmp_path)
    with open(index, "rb") as f:
        version = pickle.load(f)
        stamp, overloads = pickle.loads(f.read())
    assert len(overloads) == 2
    (k1, n1), (k2, n2) = overloads.items()
    with open(index, "wb") as f:
        pickle.dump(version, f, protocol=-1)
        f.write(pickle.dumps((stamp, {k1: n2, k2: n1}), protocol=-1))

    assert _run(tmp_path) == {"results": [3.5, 5.5], "hits": 0}  # both missed, both right
    assert _run(tmp_path) == {"results": [3.5, 5.5], "hits": 2}  # both mended


def test_two_saves_at_once_keep_both_entries(tmp_path):
    # Process B saves while process A is between reading the index and writing it (the race:
    # simulated with two cache-file objects and a thread; flock excludes two opens of the lock
    # file in one process as in two).  Under the lock B waits for A, then reads A's entry and
    # takes the next data file: both entries load their own data.  Without it B's entry is lost
    # or, with A's index and B's data, A's key maps to B's data.
    base, stamp = "f-1.py311", ("stamp", 1)
    a = _fastmath._LockedIndexDataCacheFile(str(tmp_path), base, stamp)
    b = _fastmath._LockedIndexDataCacheFile(str(tmp_path), base, stamp)
    b_done = threading.Event()
    read_index = a._load_index

    def read_then_let_b_save():
        overloads = read_index()
        saving = threading.Thread(target=lambda: (b.save("key b", "data b"), b_done.set()))
        saving.start()
        # B blocks on the lock (it would have saved by now without it); whether it did is read
        # here, while A still holds the lock (after A's save, B may finish at any moment)
        read_then_let_b_save.b_saved_first = b_done.wait(0.5)
        read_then_let_b_save.thread = saving
        return overloads

    a._load_index = read_then_let_b_save
    a.save("key a", "data a")
    assert read_then_let_b_save.b_saved_first is False
    read_then_let_b_save.thread.join(10)
    assert b_done.is_set()
    assert (a.load("key a"), a.load("key b")) == ("data a", "data b")
    assert os.path.exists(tmp_path / _fastmath._LOCK_NAME)


def test_a_reader_during_a_save_never_meets_an_older_source_s_data(tmp_path):
    # After the source changes (a new version installed), numba's index of the old source reads
    # as empty and the new saves number their data files from 1 again, over the old files (numba:
    # "stale data files will be eventually overwritten").  numba's save writes the index first:
    # a process loading (unlocked) between that and the data would be handed the old source's
    # code under the new source's key.  Ours writes the data first, so the reader misses instead.
    base = "f-1.py311"
    old = _fastmath._LockedIndexDataCacheFile(str(tmp_path), base, ("stamp", 1))
    old.save("key", "old source's code")
    new = _fastmath._LockedIndexDataCacheFile(str(tmp_path), base, ("stamp", 2))
    reader = _fastmath._LockedIndexDataCacheFile(str(tmp_path), base, ("stamp", 2))
    assert reader.load("key") is None
    seen = []
    save_data = new._save_data

    def save_data_seen_by_a_reader(name, data):
        seen.append(reader.load("key"))  # before the data and after it, the index
        save_data(name, data)                # does not name it yet
        seen.append(reader.load("key"))

    new._save_data = save_data_seen_by_a_reader
    new.save("key", "new source's code")
    assert seen == [None, None]
    assert reader.load("key") == "new source's code"


def test_our_functions_and_callbacks_save_under_the_lock():
    # every cached kernel (``kernel``, ``callee``, a RangeKernel's callbacks via ``cached``)
    for dispatcher in (_parallel._run_ranges, _parallel._run_range):
        assert type(dispatcher._cache._cache_file) is _fastmath._LockedIndexDataCacheFile


@pytest.mark.parametrize("where", ["directory", "missing directory", "no locks"])
def test_the_lock_gives_way_where_it_cannot_be_taken(tmp_path, monkeypatch, where):
    # a directory the lock file cannot be made in, or a file system that refuses flock (ENOLCK
    # on some NFS): the save goes on unlocked (numba's own way), rather than failing the compile
    import errno
    import fcntl

    def refuse(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    if where == "no locks":
        monkeypatch.setattr(fcntl, "flock", refuse)
    directory = tmp_path / "missing" if where == "missing directory" else tmp_path
    ran = []
    with _fastmath._directory_lock(str(directory)):
        ran.append(True)
    assert ran == [True]
    assert os.path.exists(directory / _fastmath._LOCK_NAME) == (where != "missing directory")
    if where == "no locks":
        cache_file = _fastmath._LockedIndexDataCacheFile(str(tmp_path), "f-1.py311", ("stamp", 1))
        cache_file.save("key", "data")
        assert cache_file.load("key") == "data"
