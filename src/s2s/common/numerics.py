"""Numerics mode: which CPU kernels decide the bits of a run.

A float32 result depends on more than the seed: ATen picks vectorised kernels for the CPU it finds
(its "CPU capability": every gradient changes between AVX2 and AVX-512), MKL picks a GEMM code
branch for the CPU (and for the thread count), and oneDNN picks kernels by ISA. The same command
therefore gave different weights and a different BLEU on an AMD EPYC and on an Intel Xeon.

``portable`` (the default) pins each of those choices to a branch every x86-64 CPU with AVX2 runs
the same way, Intel or AMD: ``ATEN_CPU_CAPABILITY=avx2``, ``ONEDNN_MAX_CPU_ISA=AVX2`` and MKL's
conditional numerical reproducibility (``MKL_CBWR``) on its ``AVX2`` branch in strict mode, with
float32 and deterministic algorithms. MKL documents its ISA branches for Intel processors; on an
AMD EPYC the AVX2 branch gave the same bits as on an Intel Xeon for every GEMM of the op battery
(``reproducibility/ops-*.json``), and strict mode is MKL's promise that a GEMM does not depend on the
thread count. ``COMPATIBLE`` (SSE2 code, documented for every x86 CPU) is the fallback: half the
speed, and its GEMMs change with the thread count, so it needs ``numerics.threads`` pinned.
The libraries read these variables at their first tensor operation, not at ``import torch``, so
:func:`apply_numerics` runs at the top of every torch stage, before any tensor exists, and then
checks that ATen really uses the pinned capability (a stage that computed something earlier would
otherwise silently run native).

The thread count does not change the bits either. Three kernels did: the attention softmax's backward
and the layer norm's, which the models replace (:mod:`s2s.models.softmax`, :mod:`s2s.models.layer_norm`);
oneDNN's LSTM, which the models run at one thread (:mod:`s2s.models.rnn_threads`); and MKL's GEMMs on
an AMD CPU, where MKL runs its AUTO branch whatever ``MKL_CBWR`` asks, so that strict mode does not
apply: portable mode holds MKL's own thread count at :data:`PORTABLE_MKL_THREADS` (every count of the
stage goes through :func:`set_threads`). ``numerics.threads: null`` (the default) uses every core.

One vendor switch is not a kernel choice and is handled in the models, in both modes: PyTorch draws
CPU dropout masks with MKL on Intel and with its own generator elsewhere (:mod:`s2s.models.dropout`).

``fast`` leaves every library on its native branch (AVX-512, AMX, bf16): quicker on a recent CPU,
bit-identical only on the same CPU model at the same thread count.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping
from typing import Any

from s2s.common.io import InputError

MODES = ("portable", "fast", "gpu")

# cuBLAS gives deterministic GEMMs only with a fixed workspace (CUDA >= 10.2): without the variable
# the first GEMM under torch.use_deterministic_algorithms(True) raises. cuBLAS reads it when its
# handle is created, at the first CUDA GEMM, so setting it here (before any CUDA op of the stage)
# is enough. Lightning sets it for training only; evaluate and translate need it as much.
CUBLAS_DETERMINISTIC = {"CUBLAS_WORKSPACE_CONFIG": ":4096:8"}

# the environment that pins each library's kernel choice to the AVX2 branch
PORTABLE_ENV: dict[str, str] = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "AVX2,STRICT",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
}

# the variables whose values belong in a run's provenance (whatever the mode)
PROVENANCE_ENV = (*PORTABLE_ENV, "OMP_NUM_THREADS", "MKL_NUM_THREADS", *CUBLAS_DETERMINISTIC)

# MKL's code branches portable mode may pin (the first is the default), with the MKL_CBWR value of
# each: AVX2 in strict mode (thread-count-invariant GEMMs), or COMPATIBLE (SSE2, half the speed,
# thread-count-dependent: the documented fallback should another vendor disagree on AVX2)
MKL_BRANCHES = ("AVX2", "COMPATIBLE")
MKL_CBWR_VALUES = {"AVX2": "AVX2,STRICT", "COMPATIBLE": "COMPATIBLE"}
DEFAULT_MKL_BRANCH = MKL_BRANCHES[0]
# MKL's own thread count in portable mode (its GEMMs; ATen's and oneDNN's kernels use numerics.threads).
# On an AMD CPU MKL runs its AUTO branch whatever MKL_CBWR asks (MKL_VERBOSE prints "CNR:AUTO,STRICT"
# under MKL_CBWR=AVX2,STRICT), and strict mode, MKL's promise of GEMMs that do not depend on the thread
# count, holds on its AVX2 and AVX-512 branches only. Measured on the AMD EPYC (torch 2.13): sgemm gave
# other bits than at 1 thread for products of 2 or 3 rows at 3, 5, 6 and 7 threads, and for narrow
# outputs (up to 16 columns at 2 threads, 32 at 4, 64 at 8) with few rows. At 2 threads every GEMM at the
# models' sizes gives the 1-thread bits (the op battery, the tiny pipeline), so MKL stays at min(threads, 2)
# and every other kernel uses every core. Where MKL's thread count cannot be set apart (a torch without
# MKL's local-threads entry point), portable mode uses at most this many threads in all.
PORTABLE_MKL_THREADS = 2

# the numerics this process applied first: (mode, threads, mkl_branch). The libraries read their
# kernel choices once, so a process cannot switch; a Hydra sweep (-m) runs its jobs in one process
_applied: tuple[str, int | None, str] | None = None


def apply_numerics(mode: str, threads: int | None = None, mkl_branch: str = DEFAULT_MKL_BRANCH) -> None:
    """Pin (``portable``), leave (``fast``) or make deterministic on a GPU (``gpu``) the kernel choices.

    Call before the first tensor operation. ``gpu`` is what a GPU user expects: bf16 mixed
    precision (conf/numerics/gpu.yaml), deterministic algorithms, bit-identical on the same GPU
    model and software stack only. In ``portable`` and ``gpu`` modes TF32 is off, so float32 means
    float32 on an accelerator too (provenance records both flags), and cuBLAS gets its
    deterministic workspace.

    ``threads``: the intra-op thread count (``None``: the library default, i.e. ``OMP_NUM_THREADS``
    or the number of cores; in portable mode on the AVX2 branch the bits do not depend on it; MKL
    itself runs at most :data:`PORTABLE_MKL_THREADS`). ``mkl_branch``: one of :data:`MKL_BRANCHES`. Raises
    :class:`InputError` for an unknown mode or branch, a CPU without AVX2, or a process that already
    ran a tensor operation on another capability.
    """
    global _applied
    if mode not in MODES:
        raise InputError(f"numerics.mode={mode!r}: expected one of {', '.join(MODES)}")
    wanted = (mode, None if threads is None else int(threads), mkl_branch if mode == "portable" else "native")
    if _applied is not None and _applied != wanted:
        raise InputError(
            f"numerics {_describe(wanted)}: this process already runs numerics {_describe(_applied)}, and the "
            "kernel choices cannot change inside a process (a -m sweep runs its jobs in one process); "
            "sweep numerics with one process per setting, e.g. one command per numerics=... value"
        )
    if mode == "portable":
        if platform.machine().lower() not in ("x86_64", "amd64"):
            raise InputError(
                f"numerics.mode=portable pins x86-64 kernels; this is a {platform.machine()} machine "
                "(use numerics=fast: results are then reproducible on this CPU model only)"
            )
        if mkl_branch not in MKL_BRANCHES:
            raise InputError(f"numerics.mkl_branch={mkl_branch!r}: expected one of {', '.join(MKL_BRANCHES)}")
        os.environ.update(PORTABLE_ENV, MKL_CBWR=MKL_CBWR_VALUES[mkl_branch])
    import torch

    if mode == "portable":
        used = torch.backends.cpu.get_cpu_capability()
        if used != "AVX2":
            raise InputError(
                f"numerics.mode=portable: ATen runs the {used} kernels, not AVX2 "
                "(the CPU lacks AVX2, or a tensor operation ran before the numerics were applied)"
            )
    if mode == "portable":
        threads = torch.get_num_threads() if threads is None else int(threads)
        if _mkl_threads_setter() is None:
            threads = min(threads, PORTABLE_MKL_THREADS)
    if mode in ("portable", "gpu"):
        for key, value in CUBLAS_DETERMINISTIC.items():
            os.environ.setdefault(key, value)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.use_deterministic_algorithms(True)
    _applied = wanted
    if threads is not None:
        set_threads(int(threads))


def set_threads(threads: int) -> None:
    """``torch.set_num_threads(threads)``; under portable numerics MKL's own count stays at most
    :data:`PORTABLE_MKL_THREADS`. torch sets MKL's count with its own, so every change of the thread
    count in a stage goes through here (``s2s.models.rnn_threads`` too)."""
    import torch

    # torch sets its counts again, MKL's too, at a thread's first parallel kernel, unless it has
    # read them before: get_num_threads does that first reading, so the cap is not undone
    torch.get_num_threads()
    torch.set_num_threads(threads)
    hold_mkl_threads()


def hold_mkl_threads() -> None:
    """Under portable numerics, MKL's thread count in the calling thread: at most :data:`PORTABLE_MKL_THREADS`.

    MKL's count is per thread, and torch gives a thread its full count at its first parallel kernel:
    code that computes in a thread of its own (a model server answering a request) calls this first."""
    if not _holding_mkl():
        return
    import torch

    _mkl_threads_setter()(min(torch.get_num_threads(), PORTABLE_MKL_THREADS))


def mkl_threads() -> int | None:
    """The thread count MKL uses in this thread where portable numerics hold it apart (None elsewhere)."""
    return int(_MKL_ENTRIES[0][1]()) if _holding_mkl() else None


def _holding_mkl() -> bool:
    """Whether this process holds MKL's thread count apart: portable numerics applied, MKL reachable."""
    return _applied is not None and _applied[0] == "portable" and _mkl_threads_setter() is not None


_MKL_ENTRIES: list[Any] = []  # the cached lookup: MKL's (set local threads, get max threads), or None


def _mkl_threads_setter() -> Any:
    """MKL's ``mkl_set_num_threads_local`` in torch's own library, which links MKL in (None where absent).

    torch calls it with every ``torch.set_num_threads``; it sets the count of the calling thread, the
    one that runs a stage's forward and (on the CPU) its backward."""
    if not _MKL_ENTRIES:
        import ctypes

        import torch

        entries = None
        if torch.backends.mkl.is_available():
            folder = os.path.join(os.path.dirname(torch.__file__), "lib")
            for name in ("libtorch_cpu.so", "torch_cpu.dll", "libtorch_cpu.dylib"):
                try:
                    lib = ctypes.CDLL(os.path.join(folder, name))
                    entries = (lib.MKL_Set_Num_Threads_Local, lib.MKL_Get_Max_Threads)
                except (OSError, AttributeError):
                    continue
                entries[0].argtypes, entries[0].restype, entries[1].restype = [ctypes.c_int], ctypes.c_int, ctypes.c_int
                break
        _MKL_ENTRIES.append(entries)
    return None if _MKL_ENTRIES[0] is None else _MKL_ENTRIES[0][0]


def _describe(applied: tuple[str, int | None, str]) -> str:
    mode, threads, branch = applied
    return f"mode={mode}" + (f" mkl_branch={branch}" if mode == "portable" else "") + f" threads={threads}"


def apply_from_config(cfg: Mapping[str, Any]) -> None:
    """:func:`apply_numerics` with the ``numerics`` section of a stage's composed config."""
    numerics = cfg.get("numerics") or {}
    apply_numerics(
        str(numerics.get("mode", "portable")),
        numerics.get("threads"),
        str(numerics.get("mkl_branch") or DEFAULT_MKL_BRANCH),
    )


def provenance(
    mode: str,
    precision: str,
    device: str = "cpu",
    device_setting: str | None = None,
    autocast: str | None = None,
) -> dict[str, Any]:
    """Where a figure came from: CPU, kernels in use, library versions, threads, precision, mode.

    Written beside every metric (reports, MLflow tags, DVCLive) so that two figures produced under
    different numerics can be told apart before they are compared. ``device`` is the device that
    ran (``cpu``, ``cuda:0``; ``device_setting`` what the config asked, e.g. ``auto``), with the
    GPU's name; ``autocast`` the autocast dtype actually used (``float32``: none); ``tf32`` the
    TF32 switches, which change float32 matmuls on an Ampere or later GPU.
    """
    import torch

    versions = torch.__config__.show()
    gpu = None
    if str(device).startswith("cuda") and torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(torch.device(device))
    return {
        "numerics": mode,
        "device": str(device),
        "device_setting": str(device if device_setting is None else device_setting),
        "gpu": gpu,
        "autocast_dtype": autocast or "float32",
        "tf32": {
            "cuda_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
            "cudnn": bool(torch.backends.cudnn.allow_tf32),
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
        },
        "cpu": cpu_model(),
        "cpu_vendor": cpu_vendor(),
        "cpu_flags": cpu_flags(),
        "machine": platform.machine(),
        "aten_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "mkl_threads": mkl_threads(),  # MKL's own count where portable numerics hold it apart
        "precision": str(precision),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "torch": str(torch.__version__),
        "mkl": _version_line(versions, "Math Kernel Library Version "),
        "onednn": _version_line(versions, "MKL-DNN v"),
        "python": sys.version.split()[0],
        "packages": package_versions(),
        "env": {key: os.environ[key] for key in PROVENANCE_ENV if key in os.environ},
    }


# the Python packages whose version decides bits of a figure: the kernels (torch), the vocabulary
# (sentencepiece), batch order and splits (numpy's Generator streams), the training loop's order
# (Lightning), the scores (sacrebleu, sacremoses for the lc-tok BLEU)
BIT_DECIDING_PACKAGES = ("torch", "numpy", "sentencepiece", "pytorch-lightning", "sacrebleu", "sacremoses")


def package_versions() -> dict[str, str | None]:
    """The installed version of each of :data:`BIT_DECIDING_PACKAGES` (None where it is missing)."""
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {}
    for name in BIT_DECIDING_PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


# the CPU features that decide which kernels the libraries would pick natively
ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile")


def cpu_flags() -> list[str]:
    """Which of :data:`ISA_FLAGS` this CPU has (``/proc/cpuinfo``; empty where it cannot be read)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    return [flag for flag in ISA_FLAGS if flag in have]
    except OSError:
        pass
    return []


def _cpuinfo(field: str) -> str | None:
    """The first ``field`` of ``/proc/cpuinfo`` (None where it cannot be read)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith(field):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what ``platform`` knows)."""
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def cpu_vendor() -> str:
    """``GenuineIntel``, ``AuthenticAMD``...: PyTorch draws CPU dropout masks by vendor (s2s.models.dropout)."""
    return _cpuinfo("vendor_id") or "unknown"


def _version_line(text: str, marker: str) -> str | None:
    """The first word after ``marker`` in ``torch.__config__.show()`` (a library's version)."""
    for line in text.splitlines():
        if marker in line:
            return line.split(marker, 1)[1].split()[0]
    return None


# Lightning's precision settings and the autocast dtype each trains in
_LIGHTNING_AUTOCAST = {"bf16-mixed": "bfloat16", "16-mixed": "float16", "bf16": "bfloat16", "16": "float16"}


def stage_provenance(
    cfg: Mapping[str, Any], stage: str, device: Any = None, autocast: str | None = None
) -> dict[str, Any]:
    """:func:`provenance` of a ``train`` or ``evaluate`` stage: what its composed config asked,
    resolved to what runs. ``device``: the device training runs on (Lightning's root device); the
    evaluate stage passes the device it decodes on and its autocast dtype (``autocast``: ``bfloat16``,
    None for float32), resolved from ``decode.device`` and ``decode.precision``."""
    numerics = cfg.get("numerics") or {}
    mode = str(numerics.get("mode", "portable"))
    if stage == "train":
        precision, setting = str(cfg["trainer"]["precision"]), str(cfg["trainer"]["accelerator"])
        ran = str(device) if device is not None else setting
        dtype = _LIGHTNING_AUTOCAST.get(precision.lower()) if not precision.startswith("32") else None
        return provenance(mode, precision, ran, setting, dtype or "float32")
    # evaluate: the caller resolves decode.device and decode.precision (s2s.inference.device, a layer
    # above this module) and passes what decodes: the device and the autocast dtype's name
    precision, setting = str(cfg["decode"].get("precision", "auto")), str(cfg["decode"].get("device", "auto"))
    return provenance(mode, precision, str(device if device is not None else setting), setting, autocast)


def provenance_tags(prov: Mapping[str, Any]) -> dict[str, str]:
    """``prov`` as flat MLflow tags (``provenance.cpu``, ``provenance.env.MKL_CBWR``...)."""
    tags: dict[str, str] = {}
    for key, value in prov.items():
        if isinstance(value, Mapping):
            tags.update({f"provenance.{key}.{k}": str(v) for k, v in value.items()})
        else:
            tags[f"provenance.{key}"] = str(value)
    return tags
