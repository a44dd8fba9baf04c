"""Compiled CPU inference: a package's network exported to ONNX and run by ONNX Runtime, with torch as the reference.

A segmentation or quality package keeps its ``weights.pt`` (the reference, and what training resumes from) and may
carry ``weights.onnx`` beside it: the same network exported by :func:`export_onnx` at packaging time (or later with
``medai models export-onnx PACKAGE``). The export is checked against torch on a random input before it is written,
and it records the SHA-256 of the weights it came from, so a package whose weights changed after the export falls
back to torch instead of running stale weights.

:func:`load_network` (used by every predictor that builds a registry network) picks the runtime from
``MEDAI_RUNTIME``:

* ``auto`` (default): each predictor's preferred runtime, the one faster warm for its network: torch for the
  segmentation U-Nets (measured on the cine model by ``bench/cmr_analyze.py``; the LGE model is the same network
  family and was not measured apart) and the quality package's artefact CNN, ONNX Runtime for the coverage model's
  end-slice ensembles (when the export is current, ``onnxruntime`` installed, the device the CPU and the arithmetic
  float32; torch otherwise);
* ``fast-start``: ONNX Runtime wherever a current export exists, torch otherwise. For one-shot processes, where
  loading counts as much as a pass: ``medai analyze`` and ``medai demo`` use it unless ``MEDAI_RUNTIME`` is set;
* ``torch``: always torch (the reference path; bfloat16 autocast and GPUs run here);
* ``onnx``: ONNX Runtime or a :class:`~medai.errors.ConfigError` saying why not.

Why it is worth a file (measured on this 2-CPU machine, with the machine otherwise idle unless said):

* loading: ONNX Runtime imports in 0.13 s and makes a session in 0.05 s, and needs neither ``monai`` (whose package
  import loads all its submodules, mlflow and matplotlib included: about 2.5 s of a cold ``medai analyze``) nor
  torch's export machinery;
* the cine U-Net's bare forward pass takes about the time of torch eager channels-last (0.15-0.16 s for 12-60
  slices at 2 threads, 0.25-0.30 s at 1 thread) and holds up better under load (with a 2-thread training job
  beside it, 0.33-0.45 s against torch's 0.65-0.86 s), but inside a whole cine analysis torch is faster: the
  inference stage ran 0.72x (2 threads) and 0.91x (1 thread) as fast on ONNX Runtime, so a warm server keeps
  torch for it and only one-shot commands (``fast-start``) take ONNX Runtime for the shorter start;
* the coverage model's end-slice ensemble (5 fold networks x 4 rotations of one small input, one graph) takes 14 ms
  per end against 36 ms on torch at 1 thread; the artefact CNN's one batched pass is faster on torch (0.22 against
  0.31-0.38 ms per slice).

``bench/cmr_analyze.py`` times both runtimes in one run and checks ACDC val Dice of each against the committed
evaluation.

Exports keep float16 weights as float16 (plus a ``Cast``) where float16 holds them exactly, so a package trained or
stored in float16 does not double in size; ``optimize=False`` keeps batch norm unfolded for that (ONNX Runtime
folds it itself when it loads the model).

An :class:`OnnxNet` is called like the torch module it replaces: a float32 ``torch.Tensor`` in, logits out.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medai.errors import ConfigError

logger = logging.getLogger(__name__)

RUNTIMES = ("auto", "torch", "onnx", "fast-start")
#: ``metadata_props`` keys of an export.
DIGEST_KEY = "medai.weights_sha256"
NETWORK_KEY = "medai.network"
#: Largest |logit| difference to torch an export may show on its random check input.
EXPORT_TOL = 1e-3


def onnx_path(package_dir: Path, weights: str) -> Path:
    """Where the export of ``weights`` lives: the same name with ``.onnx``."""
    return (Path(package_dir) / weights).with_suffix(".onnx")


def file_digest(path: Path) -> str:
    """SHA-256 of a file (hex)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def network_signature(name: str, params: dict[str, Any]) -> str:
    """A canonical text of a network spec (registry name and constructor arguments)."""
    return json.dumps({"name": name, "params": params}, sort_keys=True, default=str)


def resolve_runtime(requested: str | None, *, preferred: str = "torch", device: str = "cpu",
                    precision: str = "float32") -> str:
    """How to run a network: ``"torch"``, ``"onnx"`` (ONNX Runtime or an error) or ``"try-onnx"`` (ONNX Runtime when
    the package has a current export, else torch), for a requested runtime (default ``MEDAI_RUNTIME``) and the
    predictor's ``preferred`` one (what ``auto`` means for it: the runtime measured faster warm for its network)."""
    if requested is None:
        from medai.settings import get_settings

        requested = get_settings().runtime
    if requested not in RUNTIMES:
        raise ConfigError(f"runtime {requested!r} (MEDAI_RUNTIME): use one of {', '.join(RUNTIMES)}")
    unsupported = []
    if str(device) != "cpu":
        unsupported.append(f"device {device} (ONNX Runtime runs here on the CPU only)")
    if precision != "float32":
        unsupported.append(f"precision {precision} (the export is float32)")
    if requested == "onnx" and unsupported:
        raise ConfigError("MEDAI_RUNTIME=onnx cannot serve " + " and ".join(unsupported) + "; use MEDAI_RUNTIME=torch")
    if requested == "auto":
        requested = "fast-start" if preferred == "onnx" else "torch"
    if requested == "torch" or unsupported:
        return "torch"
    return "onnx" if requested == "onnx" else "try-onnx"


def thread_count() -> int:
    """The intra-op thread count in force: torch's when torch is loaded (``torch.set_num_threads`` governs both
    runtimes, so a bench or server sets it once), else the CPUs this process may use."""
    torch = sys.modules.get("torch")
    if torch is not None:
        return int(torch.get_num_threads())
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def runtime_of(net: Any) -> str:
    """``"onnx"`` for an :class:`OnnxNet`, else ``"torch"``: what a predictor reports as its ``runtime``."""
    return "onnx" if isinstance(net, OnnxNet) else "torch"


class OnnxNet:
    """An exported network under ONNX Runtime, called like the torch module: ``net(x)`` with a float32
    ``(B, C, *spatial)`` tensor returns the logits as a tensor. One session per intra-op thread count, made on
    first use (about 60 ms each)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._sessions: dict[int, Any] = {}
        self._session(thread_count())  # fail at load, not at the first study

    def _session(self, threads: int) -> Any:
        s = self._sessions.get(threads)
        if s is None:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
            opts.log_severity_level = 3
            # no arena: it would keep the largest pass's activations resident between studies (about 100 MB more
            # for the cine U-Net) for little speed (1.30 s of the cine inference stage with it or without, 2
            # threads, bench/cmr_analyze.py on 2026-12-07); freed memory goes back as torch's does
            opts.enable_cpu_mem_arena = False
            # pool threads that spin after a pass take the cores from the numpy work between passes: 1.64 -> 1.30 s
            # of the cine inference stage at 2 threads, and 364 -> 229 MiB peak RSS above idle
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            s = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
            self._sessions[threads] = s
        return s

    def metadata(self) -> dict[str, str]:
        """The export's ``metadata_props`` (weights digest, network spec)."""
        return dict(next(iter(self._sessions.values())).get_modelmeta().custom_metadata_map)

    def __call__(self, x: Any) -> Any:
        import torch

        s = self._session(thread_count())
        arr = np.ascontiguousarray(x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x, dtype=np.float32)
        (out,) = s.run(None, {s.get_inputs()[0].name: arr})
        return torch.from_numpy(out)

    def __repr__(self) -> str:
        return f"OnnxNet({self.path.name})"


def load_onnx(package_dir: Path, weights: str, signature: str, *, required: bool = False, name: str | None = None
              ) -> OnnxNet | None:
    """The package's current export of ``weights`` (file ``name``, default :func:`onnx_path`), or None (logged; a
    :class:`ConfigError` when ``required``) when there is none, ``onnxruntime`` is missing, or the export is stale
    (other weights or another network)."""
    path = Path(package_dir) / name if name else onnx_path(package_dir, weights)

    def unusable(why: str) -> None:
        if required:
            raise ConfigError(f"MEDAI_RUNTIME=onnx but {why}; run `medai models export-onnx {package_dir}` or use "
                              "MEDAI_RUNTIME=torch")
        logger.info("%s: torch runtime (%s)", Path(package_dir).name, why)

    if not path.is_file():
        return unusable(f"{path.name} is missing")
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return unusable("onnxruntime is not installed")
    net = OnnxNet(path)
    props = net.metadata()
    if props.get(DIGEST_KEY) != file_digest(Path(package_dir) / weights):
        return unusable(f"{path.name} was exported from other weights than {weights}")
    if props.get(NETWORK_KEY) != signature:
        return unusable(f"{path.name} was exported from another network spec")
    return net


def export_onnx(net: Any, package_dir: Path, weights: str, signature: str, example_shape: Sequence[int],
                spatial_divisor: int | None = None, *, seed: int = 0, name: str | None = None) -> Path:
    """Export a float32 torch network to ``<weights>.onnx`` (or ``name``) in ``package_dir`` and check it against
    torch.

    Args:
        net: the network with the package's weights loaded (eval mode is set here).
        weights: the weights file it was loaded from (its digest is recorded in the export).
        signature: :func:`network_signature` of its spec.
        example_shape: ``(B, C, *spatial)`` of a typical input.
        spatial_divisor: spatial sizes are dynamic multiples of this (the predictor pads to it); None keeps the
            example's spatial size fixed (networks fed a fixed size). The batch is always dynamic.

    Raises:
        ConfigError: the export's logits differ from torch's by more than :data:`EXPORT_TOL`.
    """
    import onnx
    import onnxruntime as ort
    import torch

    net = net.float().eval()
    shape = tuple(int(s) for s in example_shape)
    dims: dict[int, Any] = {0: torch.export.Dim("batch", min=1, max=4096)}
    if spatial_divisor:
        for axis in range(2, len(shape)):
            if shape[axis] % spatial_divisor:
                raise ValueError(f"example size {shape[axis]} is not a multiple of {spatial_divisor}")
            dims[axis] = spatial_divisor * torch.export.Dim(f"s{axis}", min=1, max=64)
    gen = torch.Generator().manual_seed(seed)
    example = torch.randn(shape, generator=gen)
    path = Path(package_dir) / name if name else onnx_path(package_dir, weights)
    tmp = path.with_suffix(".onnx.tmp")
    onnx_log = logging.getLogger("torch.onnx")
    level = onnx_log.level
    with torch.no_grad(), warnings.catch_warnings():
        # the exporter's own chatter (deprecations inside torch, optional torchvision ops): not the user's to act on
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        onnx_log.setLevel(logging.ERROR)
        try:
            program = torch.onnx.export(net, (example,), dynamo=True, dynamic_shapes=(dims,),
                                        input_names=["x"],
                                        output_names=["logits"], verbose=False, optimize=False)
        finally:
            onnx_log.setLevel(level)
    program.save(str(tmp))
    model = onnx.load(str(tmp))
    _half_exact_initializers(model)
    for key, value in ((DIGEST_KEY, file_digest(Path(package_dir) / weights)), (NETWORK_KEY, signature)):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(tmp))
    # the check: a batch and (where dynamic) a spatial size other than the example's
    check_shape = list(shape)
    check_shape[0] = shape[0] + 1
    if spatial_divisor and len(shape) > 2:
        check_shape[-1] = shape[-1] + spatial_divisor
    x = torch.randn(check_shape, generator=gen)
    with torch.no_grad():
        ref = net(x).numpy()
    sess = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    diff = float(np.abs(got - ref).max())
    if not np.isfinite(diff) or diff > EXPORT_TOL:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"ONNX export of {weights} differs from torch by {diff:.3g} (> {EXPORT_TOL}); not written")
    tmp.replace(path)
    logger.info("exported %s (max |logit| difference to torch %.2g)", path, diff)
    return path



def export_package(package_dir: Path) -> list[Path]:
    """Export a package's networks (:meth:`medai.inference.predictor.Predictor.export_onnx`, loaded on torch) and
    list the files written in its ``metadata.json``."""
    from medai.inference.package import read_metadata, write_metadata
    from medai.inference.predictor import Predictor

    package_dir = Path(package_dir)
    written = Predictor.from_package(package_dir, runtime="torch").export_onnx()
    if written:
        meta = read_metadata(package_dir)
        names = [p.relative_to(package_dir).as_posix() for p in written]
        meta.files = [*meta.files, *(n for n in names if n not in meta.files)]
        write_metadata(package_dir, meta)
    return written


def _half_exact_initializers(model: Any, min_size: int = 1024) -> int:
    """Store each float32 initializer whose values float16 holds exactly (weights trained or packaged in float16) as
    float16 plus a ``Cast`` back to float32: lossless, half the file, and ONNX Runtime folds the casts when it loads
    the model, so inference is unchanged. Returns how many were converted."""
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    casts, n = [], 0
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT or int(np.prod(init.dims)) < min_size:
            continue
        arr = numpy_helper.to_array(init)
        half = arr.astype(np.float16)
        if not np.array_equal(half.astype(np.float32), arr):
            continue
        name = init.name
        init.CopyFrom(numpy_helper.from_array(half, f"{name}__f16"))
        casts.append(helper.make_node("Cast", [f"{name}__f16"], [name], to=TensorProto.FLOAT, name=f"{name}__cast"))
        n += 1
    if casts:
        nodes = list(graph.node)
        del graph.node[:]
        graph.node.extend(casts + nodes)
    return n
