"""Time two revisions of softmaxkit against each other in one process, paired.

    python benchmarks/pair_revisions.py HEAD~1 WT --case 4096x4096:-1:softmax:out
    python benchmarks/pair_revisions.py HEAD HEAD --case 64x4096:0:log_softmax  # the noise floor
    python benchmarks/pair_revisions.py HEAD HEAD --set-b _numpy_backend.SLABS=False \\
        --case 1024x1024:0:softmax

Each revision (a git revision of this repository, or ``WT`` for the working tree) is copied as a
package of its own name (``sk_a``, ``sk_b``) into a scratch directory and imported from there,
with its own numba cache; each copy is checked to resolve its public functions to its own
modules.  (Until e944601 the package's lazy names were absolute, so a copy called whichever
softmaxkit was installed: copies older than that get the fix applied here, and comparisons made
with copies before it measured one version against itself.)

Per case both versions get the same input, and ``out=`` buffers at the same offset from it
modulo 4 KiB (``--out-offset``, 2 KiB by default, where softmaxkit places its own results): the
placement alone moves a kernel by up to 40% (docs/performance.md, "A Zen 4 session").  Each
round times A, B, B, A (each the median of five samples of enough calls for ``--sample-ms``),
and the case's figure is the median over rounds of (B1 + B2) / (A1 + A2), with its quartiles:
below 1 means B is faster.  It also prints whether the two results are bit-identical.  The input
is standard normals times 3, or with ``--input peaked`` one entry per slice 30 above the others
(float32 log_softmax's uncounted sums then fall short).  ``--masked FRACTION`` passes ``where=``,
a random mask keeping about that fraction of the entries (the same for both), of the input's
shape or, with ``--mask-shape SHAPE``, of a shape broadcast to it (``1000``, ``8x1x1x128``).

``--set-a``/``--set-b MODULE.NAME=VALUE`` set a module attribute of one copy before its first
call (MODULE relative to the package, VALUE a Python literal).  Attributes of ``_kernels``
modules are compile-time constants to numba: the copies' caches are then cleared first.

Nothing here asserts a timing; it measures and prints.
"""

from __future__ import annotations

import argparse
import ast
import gc
import importlib
import io
import math
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _harness import paired_ratio

ROOT = Path(__file__).resolve().parent.parent
PAGE = 4096


def copy_revision(revision: str, name: str, into: Path) -> Path:
    """``src/softmaxkit`` at ``revision`` (``WT``: the working tree) copied as package ``name``
    under ``into``, with no numba cache; returns the package directory."""
    target = into / name
    shutil.rmtree(target, ignore_errors=True)
    if revision == "WT":
        shutil.copytree(ROOT / "src" / "softmaxkit", target, ignore=shutil.ignore_patterns("__pycache__"))
    else:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "src/softmaxkit"],
                                 capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            for member in tar.getmembers():
                if not member.isfile():
                    continue
                path = target / Path(member.name).relative_to("src/softmaxkit")
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(tar.extractfile(member).read())
    init = target / "__init__.py"
    init.write_text(own_names(init.read_text(), name))
    return target


def own_names(init_text: str, name: str) -> str:
    """A package ``__init__``'s text with its absolute lazy module names (``"softmaxkit._api"``,
    revisions before e944601) made the copy's own."""
    return init_text.replace('"softmaxkit.', f'"{name}.')


def load_copy(directory: Path):
    """Import the package copied to ``directory`` and check that it is its own."""
    name = directory.name
    sys.path.insert(0, str(directory.parent))
    try:
        module = importlib.import_module(name)
    finally:
        sys.path.remove(str(directory.parent))
    for public in ("softmax", "log_softmax", "logsumexp", "set_num_threads"):
        owner = getattr(module, public).__module__
        if owner.split(".")[0] != name:
            raise RuntimeError(f"copy {name}: {public} comes from {owner}, not from the copy")
    return module


def clear_numba_cache(directory: Path) -> None:
    for pattern in ("*.nbi", "*.nbc"):
        for path in directory.rglob(pattern):
            path.unlink()


def apply_setting(module, setting: str) -> None:
    """``MODULE.NAME=VALUE`` on the copy ``module`` (MODULE relative to the package)."""
    path, _, value = setting.partition("=")
    owner_path, _, attribute = path.rpartition(".")
    owner = importlib.import_module(f"{module.__name__}.{owner_path}" if owner_path else module.__name__)
    if not hasattr(owner, attribute):
        raise SystemExit(f"--set {setting}: {owner.__name__} has no attribute {attribute!r}")
    setattr(owner, attribute, ast.literal_eval(value))


def at_page_offset(shape: tuple[int, ...], dtype: np.dtype, offset: int) -> np.ndarray:
    """An uninitialised array starting ``offset`` bytes past a 4 KiB boundary."""
    nbytes = math.prod(shape) * dtype.itemsize
    raw = np.empty(nbytes + 2 * PAGE, np.uint8)
    start = (-raw.ctypes.data) % PAGE + offset % PAGE
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def parse_shape(text: str) -> tuple[int, ...]:
    """``4x21x256x256`` as ``(4, 21, 256, 256)``."""
    return tuple(int(s) for s in text.split("x"))


def parse_case(spec: str) -> tuple[tuple[int, ...], int, str, str, np.dtype]:
    """``SHAPE:AXIS:FUNCTION[:MODE[:DTYPE]]``, e.g. ``4x21x256x256:1:softmax:out:float32``."""
    parts = spec.split(":")
    if not 3 <= len(parts) <= 5:
        raise SystemExit(f"--case {spec!r}: expected SHAPE:AXIS:FUNCTION[:MODE[:DTYPE]]")
    shape = parse_shape(parts[0])
    mode = parts[3] if len(parts) > 3 else "out"
    if mode not in ("out", "fresh", "inplace"):
        raise SystemExit(f"--case {spec!r}: MODE is out, fresh or inplace, not {mode!r}")
    if parts[2] not in ("softmax", "log_softmax", "softmin", "logsumexp"):
        raise SystemExit(f"--case {spec!r}: FUNCTION is softmax, log_softmax, softmin or logsumexp")
    if parts[2] == "logsumexp" and mode == "inplace":
        raise SystemExit(f"--case {spec!r}: logsumexp has no in-place form")
    return shape, int(parts[1]), parts[2], mode, np.dtype(parts[4] if len(parts) > 4 else "float32")


def make_call(
    module, x: np.ndarray, axis: int, function: str, mode: str, out_offset: int, where: np.ndarray | None = None
) -> Callable:
    f = getattr(module, function)
    if mode == "fresh":
        return lambda: f(x, axis=axis, where=where)
    if mode == "inplace":
        y = at_page_offset(x.shape, x.dtype, x.ctypes.data % PAGE)
        y[...] = x  # the input changes call by call: in place, that is the point
        return lambda: f(y, axis=axis, out=y, where=where)
    shape = x.shape
    if function == "logsumexp":
        shape = tuple(s for d, s in enumerate(x.shape) if d != axis % x.ndim)
    out = at_page_offset(shape, x.dtype, x.ctypes.data % PAGE + out_offset)
    return lambda: f(x, axis=axis, out=out, where=where)


def calls_per_sample(call: Callable, sample_s: float) -> int:
    n = 1
    while True:
        start = time.perf_counter()
        for _ in range(n):
            call()
        if time.perf_counter() - start >= sample_s:
            return n
        n *= 2


def sample(call: Callable, n: int, samples: int = 5) -> float:
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        for _ in range(n):
            call()
        times.append((time.perf_counter() - start) / n)
    return statistics.median(times)


def pair(a: Callable, b: Callable, rounds: int, sample_s: float) -> dict:
    n = max(calls_per_sample(a, sample_s), calls_per_sample(b, sample_s))
    times_a, times_b = {}, {}  # round -> mean of its two samples
    gc.disable()
    try:
        for r in range(rounds):
            a1, b1, b2, a2 = sample(a, n), sample(b, n), sample(b, n), sample(a, n)
            times_a[r], times_b[r] = (a1 + a2) / 2, (b1 + b2) / 2
    finally:
        gc.enable()
    ratio = paired_ratio(times_b, times_a)
    return {"ratio": ratio.median, "q1": ratio.low, "q3": ratio.high,
            "a_s": statistics.median(times_a.values()), "b_s": statistics.median(times_b.values())}


def make_input(kind: str, shape: tuple, axis: int, rng: np.random.Generator) -> np.ndarray:
    """A case's input (float64; ``kind`` as ``--input``): for ``peaked``, every slice along
    ``axis`` has one entry at 0 and the others within one below -30."""
    if kind == "normal":
        return rng.standard_normal(shape) * 3
    x = rng.uniform(-31.0, -30.0, shape)
    reduced = list(shape)
    reduced[axis] = 1
    np.put_along_axis(x, rng.integers(0, shape[axis], reduced), 0.0, axis=axis)
    return x


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", help="revision A (git revision, or WT for the working tree)")
    parser.add_argument("b", help="revision B")
    parser.add_argument("--case", action="append", required=True, help="SHAPE:AXIS:FUNCTION[:MODE[:DTYPE]]")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--sample-ms", type=float, default=20.0)
    parser.add_argument("--threads", type=int, default=None, help="numba threads for both (default: numba's)")
    parser.add_argument("--x-offset", type=int, default=16, help="the input's offset past a page (numpy's: 16)")
    parser.add_argument("--out-offset", type=int, default=2048, help="out= this far past the input, modulo 4 KiB")
    parser.add_argument("--input", choices=("normal", "peaked"), default="normal",
                        help="standard normals times 3, or per slice one entry 30 above the others "
                             "(float32 log_softmax's uncounted sums then fall short)")
    parser.add_argument("--masked", type=float, default=None, metavar="FRACTION",
                        help="pass where=, a random mask keeping about FRACTION of the entries")
    parser.add_argument("--mask-shape", type=parse_shape, default=None, metavar="SHAPE",
                        help="with --masked: the mask's shape (such as 1000 or 8x1x1x128), broadcast to each case's")
    parser.add_argument("--set-a", action="append", default=[], metavar="MODULE.NAME=VALUE")
    parser.add_argument("--set-b", action="append", default=[], metavar="MODULE.NAME=VALUE")
    parser.add_argument("--keep", type=Path, default=None, help="copy into this directory and keep it")
    args = parser.parse_args(argv)
    cases = [parse_case(spec) for spec in args.case]
    if args.mask_shape is not None and args.masked is None:
        parser.error("--mask-shape needs --masked FRACTION")

    scratch = args.keep or Path(tempfile.mkdtemp(prefix="pair-revisions-"))
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        copies = []
        for revision, name, settings in ((args.a, "sk_a", args.set_a), (args.b, "sk_b", args.set_b)):
            directory = copy_revision(revision, name, scratch)
            if settings:
                clear_numba_cache(directory)
            module = load_copy(directory)
            for setting in settings:
                apply_setting(module, setting)
            if args.threads:
                module.set_num_threads(args.threads)
            copies.append(module)
        threads = copies[0].get_num_threads()
        print(f"A = {args.a} {' '.join(args.set_a)}\nB = {args.b} {' '.join(args.set_b)}\n"
              f"{threads} threads; {args.input} input {args.x_offset} bytes past a page, "
              f"out= {args.out_offset} past the input"
              + ("" if args.masked is None else f"; where= keeping {args.masked:g} of the entries")
              + ("" if args.mask_shape is None else f", of shape {'x'.join(map(str, args.mask_shape))}"))
        rng = np.random.default_rng(20261204)
        for (shape, axis, function, mode, dtype), spec in zip(cases, args.case):
            x = at_page_offset(shape, dtype, args.x_offset)
            x[...] = make_input(args.input, shape, axis, rng)
            where = None if args.masked is None else rng.random(args.mask_shape or shape) < args.masked
            call_a, call_b = (make_call(m, x, axis, function, mode, args.out_offset, where) for m in copies)
            same = mode == "inplace" or np.array_equal(call_a(), call_b(), equal_nan=True)
            r = pair(call_a, call_b, args.rounds, args.sample_ms / 1e3)
            print(f"{spec}: B/A {r['ratio']:.3f} (quartiles {r['q1']:.3f}-{r['q3']:.3f}); "
                  f"A {r['a_s'] * 1e6:.1f} us, B {r['b_s'] * 1e6:.1f} us; "
                  f"{'results identical' if same else 'results differ'}", flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
