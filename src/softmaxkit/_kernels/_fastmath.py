"""The compile options of softmaxkit's kernels, defined once: two fastmath flag sets, the
decorators every kernel is compiled with (``kernel``, and ``callee`` for functions that only
other kernels call, compiled for linking only), the compiler pipeline they share
(``WideVectorCompiler``), the on-disk cache they load from (``cached``), and the CPU they are
compiled for (``target_cpu``).

numba's ``fastmath=True`` means LLVM's ``fast``, which includes ``nnan`` and ``ninf``:
LLVM may then assume no NaN or infinity ever occurs and, for example, fold the
``-inf`` that marks a masked element or drop the NaN a caller must see.  Our kernels rely
on both, so neither flag set contains them (``tests/test_fastmath.py`` shows what goes
wrong when they do).

``REDUCTION`` adds ``reassoc``: without it LLVM will not vectorise a sum.  ``ORDERED`` has
no ``reassoc``: it is for code whose accuracy depends on evaluation order (the exp range
reduction's hi/lo split, TwoSum residuals, compensated sums), where reassociation would
merge the terms that carry the low-order bits.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading

from llvmlite import binding as llvm
from numba import _dynfunc, config, njit
from numba.core import event, ir_utils, lowering
from numba.core import sigutils
from numba.core.caching import CompileResultCacheImpl, FunctionCache, IndexDataCacheFile
from numba.core.codegen import JITCodeLibrary
from numba.core.compiler import CompileResult, Compiler
from numba.core.compiler_machinery import register_pass
from numba.core.registry import CPUDispatcher
from numba.core.runtime import _nrt_python, nrt, nrtdynmod
from numba.core.typed_passes import NativeLowering
from numba.extending import overload

if config.DISABLE_JIT:  # njit would hand back plain Python functions, which cannot run our kernels
    raise RuntimeError("softmaxkit's kernels need numba's compiler, and NUMBA_DISABLE_JIT is set; unset it")

#: For loops whose result does not depend on summation order beyond rounding.
REDUCTION: set[str] = {"reassoc", "contract", "arcp", "nsz", "afn"}

#: For order-sensitive arithmetic (range reductions, error-free transformations).
#: ``contract`` (FMA formation) only removes roundings, so it is kept.
ORDERED: set[str] = {"contract", "nsz"}

#: Flags that must never appear: they let LLVM assume away NaN and inf.
FORBIDDEN: frozenset[str] = frozenset({"nnan", "ninf", "fast"})

# numba accepts only a set (not a frozenset); treat both as constants.
assert not (REDUCTION | ORDERED) & FORBIDDEN


# ---------------------------------------------------------------------------------------------
# 512-bit vectors on every AVX-512 CPU
#
# LLVM's loop vectoriser uses 256-bit vectors on Intel CPUs with AVX-512 (its "prefer-256-bit"
# tuning for Skylake-X onwards, against the clock penalty of 512-bit code on the first of them),
# and 512-bit ones on AMD's Zen 4 and 5.  Our kernels are compute-bound in cache, so on Intel they
# ran at 3/4 of the arithmetic they could do: on a 2-core Xeon VM (LLVM reads it as "rocketlake")
# one float32 row of 4096 in L2 took 0.49 ns per element with ymm registers and 0.39 with zmm,
# float64 1.23 against 0.94, a column block 0.66 against 0.54 (torch: 0.46, 1.13, 0.75).
# The function attribute "prefer-vector-width"="512" -- what clang's -mprefer-vector-width=512
# sets -- lifts that preference for our functions only; numba has no option for it, so our kernels
# are compiled by a pipeline whose lowering adds it to every function it emits.  It changes
# nothing where LLVM already prefers 512 bits, and nothing without AVX-512 (LLVM takes the
# narrower of the preference and the widest registers the CPU has).  (On Zen 4, which runs 512-bit
# operations as two 256-bit halves, a preference of 256 was slower too: paired with
# benchmarks/pair_revisions.py, 4096x4096 softmax 1.17, 32x128256 1.22, NCHW 1.05.)

PREFERRED_VECTOR_WIDTH = '"prefer-vector-width"="512"'


# This leans on numba and llvmlite internals (``Lower.pre_lower``, ``NativeLowering.lowering_class``,
# a pipeline's ``passes`` list, ``FunctionAttributes`` being a set).  Should one of them change,
# the kernels lose the attribute, not their correctness: each step below does nothing rather
# than fail, and ``tests/test_vector_width.py`` reports the loss.


class _WideVectorLower(lowering.Lower):
    def pre_lower(self):
        super().pre_lower()
        # llvmlite's FunctionAttributes accepts only enum attributes (its add() checks a fixed
        # list); a string attribute is printed as it is, in the function's definition.
        attributes = self.builder.function.attributes
        if isinstance(attributes, set):
            set.add(attributes, PREFERRED_VECTOR_WIDTH)


@register_pass(mutates_CFG=True, analysis_only=False)
class _WideVectorLowering(NativeLowering):
    _name = "softmaxkit_wide_vector_lowering"

    @property
    def lowering_class(self):
        return _WideVectorLower

    def run_pass(self, state):
        if _compiles_for_linking_only(state):
            return _lower_for_linking_only(self, state)
        return super().run_pass(state)


class WideVectorCompiler(Compiler):
    """numba's default pipeline, lowering every function with ``PREFERRED_VECTOR_WIDTH``."""

    def define_pipelines(self):
        pipelines = super().define_pipelines()
        for pipeline in pipelines:
            if not isinstance(getattr(pipeline, "passes", None), list):
                continue
            pipeline.passes[:] = [
                ((_WideVectorLowering if cls is NativeLowering else cls), description)
                for cls, description in pipeline.passes
            ]
        return pipelines


# ---------------------------------------------------------------------------------------------
# Callees: compiled for linking only
#
# numba compiles each function into a code library of its own and makes machine code of it; a
# caller links the callee's IR into its own library, optimises the whole and makes machine code
# of that.  A callee's own machine code is never run: it has no wrapper for Python or C to call
# it through, and compiled callers run their linked copies.  Making it was most of numba's
# machine-code time on a cold first call: NCHW softmax compiles 39 callees, and on the 2-core
# Zen 5 VM its cold first call took 4.2-4.4 s without their machine code, 5.1-5.2 s with it.
# So a callee's library (``_LinkOnlyLibrary``) makes no machine code, nor (since 2026-12-06) does
# it optimise its module on its own.  Two things change:
# - what callers link: numba linked a callee's module after optimising it *and* making machine
#   code of it, which rewrites the module in place (loop strength reduction, address-mode
#   sinking).  Callers now link it as lowered (numba's function passes only) and optimise it with
#   their own module, once, as LLVM's link-time optimisation would.  numba ran LLVM's module
#   pipeline (twice: a cheap one, then the full one) on every callee's module, then again on
#   every caller's, which holds its callees: on the 2-vCPU Xeon that was 0.72 s of the 4.2 s of
#   a cold first call of NCHW log_softmax, and 0.24 s without the callees' own.  Kernel timings
#   paired there (2 threads, 39 layouts, dtypes and masks): 0.90-1.01, results bit-identical,
#   except one callee, log_softmax's column writing pass (``write_shifted``, 1.08-1.14 without
#   its own optimisation).  Such a callee is marked ``optimised_alone`` and optimised as numba
#   would.  (Until then callers linked the optimised module without machine code; paired on the
#   Zen 5 VM against numba's: NCHW softmax/log_softmax/logsumexp 0.99-1.01, rows 0.99-1.00.)
# - numba's on-disk cache: it keeps a callee's bitcode only (numba's "bitcode" kind), which a
#   later process compiling another caller loads as it was compiled, without machine code
#   (``_CompileResultCacheImpl``, below).
# A callee whose code reads its numba environment (an ``objmode`` block, an exception raised with
# run-time values) gets machine code as before: numba stores the environment's address into the
# machine code's copy of a global, which callers' linked copies share.
# This leans on numba internals (``CPUCodeLibrary``'s finalising steps, ``Flags.no_compile``,
# ``_dynfunc.make_function``); without them callees compile as numba compiles them, and
# ``tests/test_callees.py`` reports it.

_LINK_ONLY_PARTS = all(
    hasattr(JITCodeLibrary, name) for name in ("_finalize_dynamic_globals", "_verify_declare_only_symbols")
) and hasattr(_dynfunc, "make_function")


class _LinkOnlyLibrary(JITCodeLibrary):
    """A callee's code library: linked into its callers' libraries and optimised there, without
    machine code of its own unless its code reads its numba environment (``env_name``), nor an
    optimisation of its own unless its function is marked ``optimised_alone``."""

    env_name: str | None = None  # the environment global's name, set before finalising
    needs_machine_code = True

    optimised_alone = False  # its function is marked ``optimised_alone``

    def _optimize_final_module(self):
        if self.optimised_alone:  # (else: left to the callers that link it)
            super()._optimize_final_module()

    def _finalize_final_module(self):
        self.needs_machine_code = self.env_name is None or _uses_a_global(self._final_module, (self.env_name,))
        if self.needs_machine_code:
            super()._finalize_final_module()
        else:
            self.finalize_for_linking_only()

    def finalize_for_linking_only(self):
        """What numba's finalising does before it makes machine code."""
        self.needs_machine_code = False
        self._finalize_dynamic_globals()
        self._verify_declare_only_symbols()
        self._finalized = True

    def serialize_using_object_code(self):
        # numba caches a library's machine code with its bitcode for linking; without machine
        # code, the bitcode alone (numba's "bitcode" kind: loading it makes the machine code)
        if self.needs_machine_code:
            return super().serialize_using_object_code()
        return self.serialize_using_bitcode()


_OPTIMISED_ALONE: set = set()  # the code objects of the callees marked ``optimised_alone``


def optimised_alone(function):
    """Mark ``function``, a callee (or an overload's implementation), as one whose module is
    optimised on its own before callers link it, as numba does: for the few whose callers were
    measured slower without (see above).  Returns it."""
    _OPTIMISED_ALONE.add(function.__code__)
    return function


def _compiles_for_linking_only(state) -> bool:
    """A function only compiled functions call (``callee``, ``callee_overload``: neither wrapper)."""
    flags = state.flags
    return _LINK_ONLY_PARTS and flags.no_cpython_wrapper and flags.no_cfunc_wrapper and state.library is None


def _lower_for_linking_only(lowering_pass, state) -> bool:
    """numba's lowering pass into a ``_LinkOnlyLibrary``: lowered as numba would, without asking
    for machine code (``no_compile``); then, what numba does on that path, finalising the library
    as what it is.  The entry point numba keeps for Python calls is a null function, as numba's
    own is for a function without a CPython wrapper."""
    library = state.library = _LinkOnlyLibrary(state.targetctx.codegen(), state.func_id.func_qualname)
    library.enable_object_caching()
    library.optimised_alone = getattr(state.func_id.func, "__code__", None) in _OPTIMISED_ALONE
    state.flags.no_compile = True
    try:
        NativeLowering.run_pass(lowering_pass, state)
    finally:
        state.flags.no_compile = False
    lowered, context = state["cr"], state.targetctx
    fndesc = lowered.fndesc
    library.env_name = context.get_env_name(fndesc)
    library._ensure_finalized()
    if library.needs_machine_code:
        entry = context.get_executable(library, fndesc, lowered.env)
    else:
        entry = _null_entry_point(library, fndesc, lowered.env)
    context.insert_user_function(entry, fndesc, [library])
    state.reload_init.extend(library._reload_init)
    state["cr"] = lowered._replace(cfunc=entry)
    return True


def _null_entry_point(library, fndesc, env):
    """The entry point numba keeps for a function without machine code: a null function, as
    numba's own is for a function without a CPython wrapper."""
    return _dynfunc.make_function(fndesc.lookup_module(), fndesc.qualname.split(".")[-1],
                                  f"compiled wrapper for {fndesc.qualname!r}", 0, env, (library,))


def _uses_a_global(module, names) -> bool:
    """Whether ``module``'s code uses one of the globals ``names``: its text names it more than
    once (the global's definition, plus a use; an unused one is optimised away)."""
    text = str(module)
    return any(text.count(name) > 1 for name in names)


_ENV_PREFIX = "_ZN08NumbaEnv"  # how numba's environment globals are named (mangled ``NumbaEnv.<function>``)


class _CompileResultCacheImpl(CompileResultCacheImpl):
    """numba's compile results in its on-disk cache, a callee's loaded as it was compiled.

    numba loads a callee's bitcode (its "bitcode" kind, see ``_LinkOnlyLibrary``) into a library
    of its own kind, which makes machine code of the module, and so rewrites it in place before
    callers link it.  Two kernels linking one callee, one compiled while the callee came from
    the cache and one while it was compiled in the process, then linked different modules, and
    a caller optimising what it links may contract or reassociate them differently: results one
    ulp apart between paths that must agree.  So a callee's library is loaded as a
    ``_LinkOnlyLibrary``, without machine code, unless its code uses a numba environment (its
    own or a linked callee's, which nothing else in the process may have loaded): those load as
    numba loads them, setting the environments' addresses into the machine code."""

    def rebuild(self, target_context, payload):
        if len(payload) != 9 or payload[0][1] != "bitcode" or not _LINK_ONLY_PARTS:  # (not a callee's)
            return super().rebuild(target_context, payload)
        libdata, fndesc, env, signature, objectmode, lifted, typeann, reload_init, referenced_envs = payload
        module = llvm.parse_bitcode(libdata[2])
        if _uses_a_global(module, [g.name for g in module.global_variables if g.name.startswith(_ENV_PREFIX)]):
            return super().rebuild(target_context, payload)
        for function in reload_init:
            function()
        library = _LinkOnlyLibrary(target_context.codegen(), libdata[0])
        library.env_name = target_context.get_env_name(fndesc)
        library._final_module = module
        library.finalize_for_linking_only()
        return CompileResult(target_context=target_context, typing_context=target_context.typing_context,
                             library=library, environment=env, entry_point=_null_entry_point(library, fndesc, env),
                             fndesc=fndesc, type_annotation=typeann, signature=signature, objectmode=objectmode,
                             lifted=lifted, typing_error=None, call_helper=None, metadata=None,
                             reload_init=reload_init, referenced_envs=referenced_envs)


def target_cpu() -> str:
    """The CPU LLVM compiles our kernels for: numba's ``NUMBA_CPU_NAME`` when set (a portable
    cache), else the host's (``"znver5"``, ``"rocketlake"``, ...), for the few choices whose
    measured effect depends on the microarchitecture."""
    from llvmlite import binding

    return config.CPU_NAME or binding.get_host_cpu_name()


# ---------------------------------------------------------------------------------------------
# Block labels: numbered afresh for each outermost compile
#
# numba numbers the blocks of the IR it builds from one process-wide counter, which only grows.
# Inlining a callee (``inline="always"``) adds an offset above the counter to the callee's labels;
# a callee that inlines callees of its own already carries labels near the counter, so each such
# nested inline doubles it.  Our kernels nest inlines throughout: on the 2-vCPU Xeon the counter
# had 3 digits after the first cold call and 52 after 60 (three functions, two dtypes, five
# layouts, masked and not).  LLVM refuses a name over 1024 characters, so a process that compiles
# enough (the test suite did, in test_small_k_columns after ~8000 tests) fails every later compile
# with "LLVM IR parsing error ... name is too long".
#
# Labels need only be unique within the IR of one compile, and a process's first compile starts
# the counter at 0; so the counter is set back to 0 as each outermost compile starts.  Outermost
# means that its thread holds numba's compiler lock once: a dispatcher takes the lock before it
# compiles, and anything that compiles it while building other IR -- a caller being typed, one of
# our callbacks (``numba.cfunc``, which takes the lock but broadcasts no "numba:compile") -- holds
# the lock already, and its IR's labels must stay below the counter.  (Our callbacks' own compiles
# are outermost when ``_parallel`` compiles them; it takes the lock and calls
# ``restart_if_outermost`` first.)  numba broadcasts "numba:compiler_lock" in the acquiring thread
# before it takes the lock and after it lets go, so a per-thread count of those events is the
# lock's depth in that thread.  Every dispatcher's outermost compile in the process, ours or not,
# then starts where a fresh process starts.
# This leans on numba's ``ir_utils._the_max_label`` and its events; should they change, nothing
# is set back, and ``tests/test_block_labels.py`` reports whether labels still grow.


class _LabelsFromZero(event.Listener):
    """Sets numba's block-label counter back to 0 as each outermost compile starts."""

    def __init__(self):
        self._held = threading.local()  # .depth: numba's compiler lock, taken by this thread

    def depth(self) -> int:
        return getattr(self._held, "depth", 0)

    def on_start(self, event_):
        if event_.kind == "numba:compiler_lock":
            self._held.depth = self.depth() + 1
        else:  # a dispatcher's compile
            self.restart_if_outermost()

    def restart_if_outermost(self):
        """Set the counter back to 0 if this thread holds numba's compiler lock once (call it
        holding the lock: ``_parallel`` does before compiling a callback, a compile numba
        broadcasts nothing for)."""
        counter = getattr(ir_utils, "_the_max_label", None)
        if self.depth() == 1 and isinstance(getattr(counter, "_value", None), int):
            counter._value = 0

    def on_end(self, event_):
        if event_.kind == "numba:compiler_lock":
            self._held.depth = max(self.depth() - 1, 0)  # (0 if we were registered while it was held)


LABELS_FROM_ZERO = _LabelsFromZero()
event.register("numba:compiler_lock", LABELS_FROM_ZERO)
event.register("numba:compile", LABELS_FROM_ZERO)


# ---------------------------------------------------------------------------------------------
# Loading from numba's on-disk cache without numba's registries
#
# Before numba loads a function from its on-disk cache it "refreshes" its compiler: it imports and
# installs every typing and lowering registry it has (linear algebra, random generators, typed
# containers, datetimes, ...; ``numba.np.arraymath`` imports scipy.linalg, when scipy is installed,
# to see whether BLAS is there).  Loading compiled code and running it needs none of that, only
# numba's runtime (NRT), which the refresh initialises first.  On the 2-core Zen 5 VM the refresh
# took 0.2-0.45 s of a first call with a warm cache: from ``import softmaxkit`` to the result,
# 0.58-0.72 s with it and 0.28-0.43 s without.  Our functions' caches therefore initialise the
# runtime and load.  A miss falls through to numba's compiler, which refreshes as always, and
# every other numba function in the process keeps numba's own cache (and its refresh).


class _RegistryFreeCache(FunctionCache):
    """numba's on-disk cache of one function, loading without numba's registries, and safe for
    several processes at once (see below); callees load as they were compiled (see above)."""

    _impl_class = _CompileResultCacheImpl

    def __init__(self, py_func):
        super().__init__(py_func)
        if type(getattr(self, "_cache_file", None)) is IndexDataCacheFile:
            self._cache_file.__class__ = _LockedIndexDataCacheFile

    def load_overload(self, sig, target_context):
        try:
            load, guard = self._load_overload, self._guard_against_spurious_io_errors
        except AttributeError:  # pragma: no cover - numba renamed them: load its own way
            return _for_signature(super().load_overload(sig, target_context), sig)
        _initialize_runtime(target_context)  # what compiled code needs of the refresh
        with guard():
            return _for_signature(load(sig, target_context), sig)


# numba's cache files are not safe for several processes compiling one function at once (numba issue
# 10128): a save reads the function's index, picks the first data file name the index does not use,
# and writes the index, then the data.  Two processes saving different signatures can pick the same
# name; the index of one and the data of the other can then win, and the index maps a signature to
# code compiled for another.  With pytest-xdist's two workers compiling on a cold cache, a
# clean-clone run of .ci/run on 2026-12-06 left ``_run_ranges``' float32 entry holding its float64
# code: every later float32 call raised "TypeError: bad argument type for built-in operation"
# (numba's CPython wrapper checks the arguments; a RangeKernel callback, called by its address,
# would have read float32 data as float64 without a word).  Our caches therefore save under an
# exclusive lock on the cache directory (``flock``: released if the process dies), and write the
# data before the index names it; and a load whose code is for another signature than the one asked
# for is a miss (it is compiled again, and the save mends the entry).


def _for_signature(compiled, sig):
    """``compiled`` (numba's compile result, or None) if it was compiled for ``sig``'s argument
    types, else None."""
    if compiled is None:
        return None
    args, _ = sigutils.normalize_signature(sig)
    loaded = getattr(getattr(compiled, "signature", None), "args", None)
    return compiled if loaded is not None and tuple(loaded) == tuple(args) else None


class _LockedIndexDataCacheFile(IndexDataCacheFile):
    """numba's index and data files of one function, each save under the cache directory's lock
    and its data written before the index names it.

    The order matters to loads, which take no lock: after the source changes, numba numbers the
    new data files from 1 again, over the old source's files, so an index written first would
    name, until the data is written, a file holding the old source's code for the same key."""

    def save(self, key, data):
        with _directory_lock(self._cache_path):
            overloads = self._load_index()
            name = overloads.get(key)
            if name is not None:
                self._save_data(name, data)
                return
            taken = set(overloads.values())
            name = next(n for n in map(self._data_name, itertools.count(1)) if n not in taken)
            self._save_data(name, data)
            overloads[key] = name
            self._save_index(overloads)


_LOCK_NAME = "softmaxkit-cache.lock"


@contextlib.contextmanager
def _directory_lock(directory: str):
    """An exclusive ``flock`` on ``directory``'s lock file while the block runs; nothing where
    there is no ``fcntl`` (Windows), the file cannot be opened or the file system refuses the
    lock (some network file systems): the block then runs unlocked, as numba's own saves do."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    try:
        fd = os.open(os.path.join(directory, _LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:
        yield
        return
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # (releases the lock)


# numba's runtime initialisation registers the runtime's C functions (allocation, reference
# counts) with LLVM's symbol table, then compiles an LLVM module of its own (atomic increments
# and decrements, ``NRT_incref``/``NRT_decref``, ...): 56-99 ms of a warm first call on the 2-core
# Xeon.  That module is needed only by what numba compiles (which links it into every function)
# and by code that calls a symbol left unresolved (recursion); cached kernels carry their own
# linked copies.  So a load registers the C functions and defers the module to the first use of
# ``rtsys.library``.


class _RuntimeCompilingOnUse(type(nrt.rtsys)):
    """numba's runtime, whose LLVM module is compiled when ``library`` is first asked for."""

    @property
    def library(self):
        self._init_guard()
        if self._library is None:
            self._library = nrtdynmod.compile_nrt_functions(self._library_context)
        return self._library


def _initialize_runtime(context) -> None:
    """``rtsys.initialize(context)``, but compiling the runtime's LLVM module on first use."""
    runtime = nrt.rtsys
    if runtime._init:
        return
    if type(runtime) is not _RuntimeCompilingOnUse.__base__:  # pragma: no cover - not numba's own
        runtime.initialize(context)
        return
    # (what Runtime.initialize does before it compiles)
    if config.NRT_STATS:
        _nrt_python.memsys_enable_stats()
    for name, address in _nrt_python.c_helpers.items():
        llvm.add_symbol(name if name.startswith("_") else "NRT_" + name, address)
    runtime._library = None
    runtime._library_context = context
    runtime.__class__ = _RuntimeCompilingOnUse
    runtime._init = True


def cached(function):
    """Give a numba dispatcher or C callback compiled without ``cache=True`` numba's on-disk
    cache, loading without numba's registries (see above).  Returns ``function``."""
    python_function = getattr(function, "py_func", None) or function.__wrapped__
    function._cache = _RegistryFreeCache(python_function)
    return function


def kernel(**options):
    """``numba.njit`` with ``WideVectorCompiler``, cached (``cached``): for every compiled
    function of ours that Python calls."""
    options.setdefault("forceinline", False)  # not inherited from whichever caller compiles it first
    compile_on_call = njit(pipeline_class=WideVectorCompiler, **options)
    return lambda function: cached(compile_on_call(function))


class _CalleeDispatcher(CPUDispatcher):
    """A ``callee``: numba's dispatcher, refusing calls from Python.  (numba would call its
    missing CPython wrapper, a null function: the process would crash.)"""

    def __call__(self, *args, **kwargs):
        raise TypeError(f"{self.py_func.__qualname__} is compiled only to be called by compiled functions; "
                        "call it from a numba.njit function")


def callee(**options):
    """``kernel`` for a function that only other compiled functions call.

    It gets neither the CPython wrapper nor the C callback wrapper that numba otherwise builds
    for every function it compiles, which only a call from Python (or from C) needs: about 20 ms
    of each function's compile, of which a cold first call compiles 40-60; and it is compiled
    for linking only (see above).  Calling such a function from Python raises ``TypeError``;
    wrap it in an ``njit`` function (as the tests do)."""
    compile_for_kernels = kernel(no_cpython_wrapper=True, no_cfunc_wrapper=True, **options)

    def decorate(function):
        dispatcher = compile_for_kernels(function)
        if type(dispatcher) is CPUDispatcher:  # (what numba.njit makes)
            dispatcher.__class__ = _CalleeDispatcher
        return dispatcher

    return decorate


def callee_overload(function, forceinline=False, **options):
    """``numba.extending.overload`` for a typing-time choice between implementations: numba
    compiles those without the CPython wrapper already; this drops the C callback wrapper too.
    ``forceinline``: numba's option (LLVM's ``alwaysinline``) for the implementations."""
    jit_options = {"no_cfunc_wrapper": True, "pipeline_class": WideVectorCompiler, "forceinline": forceinline}
    return overload(function, jit_options=jit_options, **options)
