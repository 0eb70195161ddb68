r"""``BodyModel``: the SMPL body model as an ``nn.Module``, with a loader that needs neither chumpy nor trust.

    from vision3d.body.model import BodyModel
    model = BodyModel.load("SMPL_NEUTRAL.pkl", dtype=torch.float32, device="cpu")   # or a .npz
    out = model(betas=betas, global_orient=go, body_pose=bp, transl=tr)              # smplx-style call
    out.vertices   # [B, 6890, 3]      out.joints  # [B, 24, 3]

The math lives in :mod:`vision3d.body.lbs` (``t'_i = sum_k w_ki G_k(theta, J(beta)) (t_i + s_i(beta) +
p_i(theta))``). Stored buffers and their layout:

===============  ==============  ===============================================================================
buffer           shape           note
===============  ==============  ===============================================================================
``v_template``   ``[V, 3]``      rest template ``T``
``shapedirs``    ``[V, 3, B]``   shape basis ``S``, truncated to ``num_betas`` components
``posedirs``     ``[207, V*3]``  pose basis ``P`` in the *flattened* (smplx) layout, so ``B_P = vec(R - I) @ P``
                                 is one matmul; SMPL's native ``[V, 3, 207]`` is converted on load
``J_regressor``  ``[24, V]``     dense (the official files store a scipy sparse matrix; densified on load)
``weights``      ``[V, 24]``     skinning weights ``w``, rows sum to 1
``parents``      ``[24]``        int64, root ``-1`` (row 0 of the files' ``kintree_table``)
``faces``        ``[F, 3]``      int64 triangle indices (the files' ``f``)
===============  ==============  ===============================================================================

Files: ``.npz`` with the keys ``v_template, shapedirs, posedirs, J_regressor, weights, kintree_table, f``
(read with ``allow_pickle=False``), or SMPL ``.pkl`` -- including the official chumpy-pickled v1.x files,
read by :class:`SafeUnpickler`, which builds numpy arrays, scipy-sparse matrices and chumpy objects from
their pickled *data* only and refuses every other global (a pickle can otherwise run arbitrary code).
The model never downloads anything: SMPL's license requires each user to fetch the files themselves.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from mpenv.device import get_device
from vision3d.body.lbs import joint_arrays, lbs
from vision3d.body.rotations import axis_angle_to_matrix
from vision3d.body.skeleton import N_JOINTS, PARENTS, check_parents

N_POSE_FEATURES = 9 * (N_JOINTS - 1)  # 207
REQUIRED_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")
WEIGHT_SUM_TOLERANCE = 1e-4


# ---------------------------------------------------------------------------------------------------------------
# Safe unpickling of SMPL .pkl files


class _ChumpyStandIn:
    """Replaces any chumpy class: keeps the wrapped value, which chumpy pickles under ``'x'`` of its state."""

    chumpy_name = "chumpy.ch.Ch"

    def __new__(cls, *args: Any, **kwargs: Any) -> _ChumpyStandIn:  # pickle may pass the original's arguments
        return super().__new__(cls)

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state)
            state = {**(state[0] or {}), **(state[1] or {})}
        self.state = state if isinstance(state, dict) else {}

    def value(self) -> Any:
        if "x" not in getattr(self, "state", {}):
            raise ValueError(
                f"a pickled {self.chumpy_name} object carries no array value ('x'); only plain chumpy arrays "
                f"(Ch), not unevaluated chumpy expressions, can be read without chumpy"
            )
        return self.state["x"]


class _SparseStandIn:
    """Replaces scipy's csc/csr matrix classes: keeps ``data, indices, indptr, shape`` and densifies with numpy
    (so loading needs no scipy, and no scipy version's pickling internals)."""

    fmt = "csc"

    def __new__(cls, *args: Any, **kwargs: Any) -> _SparseStandIn:
        return super().__new__(cls)

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:
            state = {**(state[0] or {}), **(state[1] or {})}
        self.state = state if isinstance(state, dict) else {}

    def toarray(self) -> np.ndarray:
        try:
            data, indices, indptr = (np.asarray(self.state[key]) for key in ("data", "indices", "indptr"))
            shape = tuple(int(n) for n in self.state.get("_shape", self.state.get("shape")))
        except (KeyError, TypeError) as error:
            raise ValueError(f"a pickled {self.fmt} sparse matrix lacks {error}") from error
        dense = np.zeros(shape, dtype=data.dtype)
        # Compressed axis: columns for csc, rows for csr; indptr[j]:indptr[j+1] are the entries of line j.
        lines = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
        if self.fmt == "csc":
            np.add.at(dense, (indices, lines), data)
        else:
            np.add.at(dense, (lines, indices), data)
        return dense


class _CscStandIn(_SparseStandIn):
    fmt = "csc"


class _CsrStandIn(_SparseStandIn):
    fmt = "csr"


def _safe_reconstructor(cls: type, base: type, state: Any) -> Any:
    """``copyreg._reconstructor`` for protocol-0/1 pickles; ``cls`` was already vetted by ``find_class``."""
    if base is not object:
        raise pickle.UnpicklingError(f"forbidden reconstruction of {cls!r} from base {base!r}")
    return cls.__new__(cls)


def _numpy_globals() -> dict[tuple[str, str], Any]:
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }
    for package in ("numpy.core", "numpy._core"):  # numpy 2 renamed core -> _core; old files say numpy.core
        allowed[(f"{package}.multiarray", "_reconstruct")] = np.ndarray.__reduce__(np.zeros(1))[0]
        allowed[(f"{package}.multiarray", "scalar")] = np.float64(0).__reduce__()[0]
        allowed[(f"{package}.numeric", "_frombuffer")] = _frombuffer
    return allowed


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as Python 3 writes ``bytes`` at protocols 0-2 (numpy's array data among them)."""
    if encoding.lower().replace("_", "-") not in ("latin1", "latin-1", "iso-8859-1"):
        raise pickle.UnpicklingError(f"forbidden: _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _frombuffer(buffer: Any, dtype: np.dtype, shape: tuple[int, ...], order: str) -> np.ndarray:
    """numpy's protocol-5 array reconstruction, re-implemented so we never import private numpy helpers."""
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise pickle.UnpicklingError("forbidden: protocol-5 array with an object dtype")
    array = np.frombuffer(buffer, dtype=dtype)
    return array.reshape(shape, order="F" if order == "F" else "C").copy()  # writable, like numpy's own


_BUILTINS = {"object": object, "set": set, "frozenset": frozenset}
_SPARSE_MODULES = ("scipy.sparse", "scipy.sparse.csc", "scipy.sparse._csc", "scipy.sparse.csr", "scipy.sparse._csr")


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that admits only numpy array reconstruction, scipy csc/csr matrices (as data) and chumpy
    objects (as their array), enough for every SMPL ``.pkl``; any other global raises
    ``pickle.UnpicklingError`` naming it, before anything is called."""

    _allowed: dict[tuple[str, str], Any] | None = None
    _chumpy_classes: dict[str, type] = {}  # cache of stand-in subclasses, one per chumpy class name

    def find_class(self, module: str, name: str) -> Any:
        if SafeUnpickler._allowed is None:
            SafeUnpickler._allowed = _numpy_globals()
        if (module, name) in SafeUnpickler._allowed:
            return SafeUnpickler._allowed[(module, name)]
        if module in _SPARSE_MODULES and name in ("csc_matrix", "csr_matrix"):
            return _CscStandIn if name == "csc_matrix" else _CsrStandIn
        if module == "chumpy" or module.startswith("chumpy."):
            qualified = f"{module}.{name}"
            if qualified not in self._chumpy_classes:
                self._chumpy_classes[qualified] = type(name, (_ChumpyStandIn,), {"chumpy_name": qualified})
            return self._chumpy_classes[qualified]
        if (module, name) in (("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor")):
            return _safe_reconstructor
        if module in ("__builtin__", "builtins") and name in _BUILTINS:
            return _BUILTINS[name]  # chumpy's state holds e.g. `_dirty_vars: set()`
        raise pickle.UnpicklingError(f"forbidden global {module}.{name} in pickle (only numpy/scipy/chumpy data)")


def _unwrap(value: Any) -> Any:
    """Chumpy stand-ins -> their array, sparse stand-ins (and real sparse matrices) -> dense arrays."""
    while isinstance(value, _ChumpyStandIn):
        value = value.value()
    if isinstance(value, _SparseStandIn) or hasattr(value, "toarray"):
        return np.asarray(value.toarray())
    return value


def read_model_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The raw arrays of an SMPL ``.npz`` or ``.pkl`` file (chumpy unwrapped, sparse densified), unvalidated."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".npz", ".pkl", ".pickle"):
        raise ValueError(f"{path}: unsupported body model file type {suffix!r} (expected .npz or .pkl)")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: body model file not found (SMPL files are never downloaded)")
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                raw: Any = {key: data[key] for key in data.files}
        else:
            with open(path, "rb") as handle:
                # latin1: Python 2 pickles (the official files) store arrays as byte strings.
                raw = SafeUnpickler(handle, encoding="latin1").load()
    except pickle.UnpicklingError as error:
        raise pickle.UnpicklingError(f"{path}: {error}") from error
    except (ValueError, OSError, EOFError, TypeError, AttributeError, KeyError, IndexError) as error:
        raise ValueError(f"{path}: cannot read body model file: {error}") from error
    if not isinstance(raw, Mapping):
        raise ValueError(f"{path}: expected a dict of arrays, got {type(raw).__name__}")
    try:
        return {str(key): _unwrap(value) for key, value in raw.items()}
    except (ValueError, TypeError, IndexError) as error:
        raise ValueError(f"{path}: {error}") from error


# ---------------------------------------------------------------------------------------------------------------
# Validation


def _float_array(arrays: Mapping[str, Any], key: str, source: str) -> np.ndarray:
    value = _unwrap(arrays[key])
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{source}: key {key!r} is not a numeric array ({error})") from error
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{source}: key {key!r} contains NaN or infinite values")
    return array


def _check_shape(array: np.ndarray, expected: tuple[int | None, ...], key: str, source: str, why: str) -> None:
    ok = array.ndim == len(expected)
    ok = ok and all(e is None or e == n for e, n in zip(expected, array.shape, strict=True))
    if not ok:
        pretty = "(" + ", ".join("*" if e is None else str(e) for e in expected) + ")"
        raise ValueError(f"{source}: key {key!r} has shape {array.shape}, expected {pretty} {why}".rstrip())


def _parents_from(arrays: Mapping[str, Any], source: str) -> np.ndarray:
    key = "kintree_table" if "kintree_table" in arrays else "parents"
    table = np.asarray(_unwrap(arrays[key]))
    if key == "kintree_table":
        _check_shape(table, (2, N_JOINTS), key, source, f"(row 0: parents of the {N_JOINTS} joints)")
        table = table[0]
    else:
        _check_shape(table, (N_JOINTS,), key, source, "")
    if not np.issubdtype(table.dtype, np.number):
        raise ValueError(f"{source}: key {key!r} is not numeric")
    parents = table.astype(np.int64)  # uint32 4294967295 (the files' root marker) stays positive here
    parents[0] = -1
    try:
        check_parents(parents.tolist())
    except ValueError as error:
        raise ValueError(f"{source}: key {key!r} is not a kinematic tree in topological order: {error}") from None
    return parents


def validate_arrays(arrays: Mapping[str, Any], source: str = "<arrays>", num_betas: int | None = None) -> dict:
    """Check and normalise SMPL arrays (file keys: ``v_template, shapedirs, posedirs, J_regressor, weights,
    kintree_table`` or ``parents``, ``f`` or ``faces``). Returns float64/int64 numpy arrays in the stored
    layout (``posedirs [207, V*3]``, ``shapedirs`` truncated to ``num_betas``, ``parents [24]``). Every
    problem is a ``ValueError`` naming ``source`` and the key."""
    arrays = dict(arrays)
    if "faces" in arrays and "f" not in arrays:
        arrays["f"] = arrays.pop("faces")
    missing = [k for k in REQUIRED_KEYS if k not in arrays and not (k == "kintree_table" and "parents" in arrays)]
    if missing:
        raise ValueError(f"{source}: missing key(s) {missing} (found: {sorted(k for k in arrays if k[0] != '_')})")

    v_template = _float_array(arrays, "v_template", source)
    _check_shape(v_template, (None, 3), "v_template", source, "(V vertices x 3)")
    n_verts = v_template.shape[0]
    from_v = f"(V = {n_verts} from 'v_template')"

    shapedirs = _float_array(arrays, "shapedirs", source)
    _check_shape(shapedirs, (n_verts, 3, None), "shapedirs", source, from_v)
    available = shapedirs.shape[2]
    wanted = available if num_betas is None else num_betas
    if not 1 <= wanted <= available:
        raise ValueError(f"{source}: key 'shapedirs' has {available} shape components; num_betas={wanted} requested")
    shapedirs = shapedirs[:, :, :wanted]

    posedirs = _float_array(arrays, "posedirs", source)
    if posedirs.shape == (n_verts, 3, N_POSE_FEATURES):  # SMPL's native layout -> [207, V*3]
        posedirs = posedirs.reshape(n_verts * 3, N_POSE_FEATURES).T
    elif posedirs.shape != (N_POSE_FEATURES, n_verts * 3):
        raise ValueError(
            f"{source}: key 'posedirs' has shape {posedirs.shape}, expected ({n_verts}, 3, {N_POSE_FEATURES}) "
            f"or ({N_POSE_FEATURES}, {n_verts * 3}) {from_v} ({N_POSE_FEATURES} = 23 non-root joints x 9)"
        )

    J_regressor = _float_array(arrays, "J_regressor", source)  # noqa: N806 (SMPL's name)
    _check_shape(J_regressor, (None, n_verts), "J_regressor", source, from_v)
    if J_regressor.shape[0] != N_JOINTS:
        raise ValueError(f"{source}: key 'J_regressor' regresses {J_regressor.shape[0]} joints, expected {N_JOINTS}")

    weights = _float_array(arrays, "weights", source)
    _check_shape(weights, (n_verts, N_JOINTS), "weights", source, f"{from_v} ({N_JOINTS} joints)")
    worst = float(np.max(np.abs(weights.sum(axis=1) - 1.0)))
    if worst > WEIGHT_SUM_TOLERANCE:
        raise ValueError(
            f"{source}: key 'weights' rows must sum to 1 (skinning is an affine blend); the worst row is off by "
            f"{worst:.3g} (tolerance {WEIGHT_SUM_TOLERANCE})"
        )

    parents = _parents_from(arrays, source)

    faces = np.asarray(_unwrap(arrays["f"]))
    _check_shape(faces, (None, 3), "f", source, "(F triangles x 3 vertex indices)")
    if faces.size and (
        not np.issubdtype(faces.dtype, np.number)
        or not np.all(faces == np.round(faces))
        or faces.min() < 0
        or faces.max() >= n_verts
    ):
        raise ValueError(f"{source}: key 'f' must hold integer vertex indices in [0, {n_verts}) {from_v}")
    return {
        "v_template": v_template,
        "shapedirs": shapedirs,
        "posedirs": posedirs,
        "J_regressor": J_regressor,
        "weights": weights,
        "parents": parents,
        "faces": faces.astype(np.int64),
    }


# ---------------------------------------------------------------------------------------------------------------
# The module


class BodyOutput(NamedTuple):
    """Output of :meth:`BodyModel.forward` (attribute names as in smplx's ``SMPLOutput``)."""

    vertices: torch.Tensor | None  # [B, V, 3] (None with return_verts=False)
    joints: torch.Tensor  # [B, 24, 3] posed regressed joints (smplx's first 24 joints)
    full_pose: torch.Tensor | None  # [B, 72] axis-angle, or [B, 24, 3, 3] with pose2rot=False
    transforms: torch.Tensor  # [B, 24, 4, 4] G_k with transl folded in: vertices = skin(rest, weights, transforms)
    betas: torch.Tensor  # [B, num_betas] as used
    global_orient: torch.Tensor  # as given (batch-expanded)
    body_pose: torch.Tensor
    v_shaped: torch.Tensor  # [B, V, 3] shaped template T + S beta (rest pose, no correctives), vertex-major view


def _as_tensor(value: Any, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(value, dtype=like.dtype, device=like.device)


def _check_finite(inputs: Mapping[str, torch.Tensor]) -> None:
    """``ValueError`` naming every input that holds NaN or infinite values (which would silently give NaN
    vertices). One reduction per input and a single read of the results."""
    if not inputs:
        return
    finite = torch.stack([torch.isfinite(value).all() for value in inputs.values()]).tolist()
    bad = [name for name, ok in zip(inputs, finite, strict=True) if not ok]
    if bad:
        raise ValueError(f"{', '.join(bad)} contain{'s' if len(bad) == 1 else ''} NaN or infinite values")


class BodyModel(nn.Module):
    """The SMPL body model (see the module docstring for the stored buffers and their layout).

    Build it with :meth:`load` (a file) or :meth:`from_arrays` (arrays in memory, file keys or
    ``parents``/``faces``). ``forward`` takes smplx's arguments; any leading ``1`` batch dimension broadcasts.
    """

    v_template: torch.Tensor
    shapedirs: torch.Tensor
    posedirs: torch.Tensor
    J_regressor: torch.Tensor
    weights: torch.Tensor
    parents: torch.Tensor
    faces: torch.Tensor

    def __init__(
        self,
        arrays: Mapping[str, Any],
        *,
        num_betas: int | None = None,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device | None = "auto",
        source: str = "<arrays>",
    ) -> None:
        super().__init__()
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        checked = validate_arrays(arrays, source=source, num_betas=num_betas)
        device = get_device(device)
        for key in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights"):
            # Contiguous: SMPL's native posedirs arrive transposed, and a product with a transposed [207, V*3]
            # matrix is several times slower at batch 1.
            self.register_buffer(key, torch.as_tensor(checked[key], dtype=dtype, device=device).contiguous())
        self.register_buffer("parents", torch.as_tensor(checked["parents"], device=device))
        self.register_buffer("faces", torch.as_tensor(checked["faces"], device=device))
        self._parent_list = tuple(int(p) for p in checked["parents"])  # host copy: no device sync per forward
        self.source = source
        self._regressed: tuple[torch.Tensor, torch.Tensor] | None = None
        self._regressed_from: tuple = ()

    @classmethod
    def from_arrays(
        cls,
        arrays: Mapping[str, Any] | None = None,
        *,
        num_betas: int | None = None,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device | None = "auto",
        **named: Any,
    ) -> BodyModel:
        """From a mapping and/or keyword arrays (numpy, torch or scipy sparse ``J_regressor``); keys as in the
        files (``kintree_table``, ``f``) or ``parents``, ``faces``. ``posedirs`` in either layout."""
        return cls({**(arrays or {}), **named}, num_betas=num_betas, dtype=dtype, device=device)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        dtype: torch.dtype = torch.float32,
        device: str | torch.device | None = "auto",
        num_betas: int | None = 10,
    ) -> BodyModel:
        """Read an SMPL ``.npz`` or ``.pkl`` (official chumpy files work without chumpy) and validate it;
        the first ``num_betas`` shape components are kept (``None``: all)."""
        return cls(read_model_file(path), num_betas=num_betas, dtype=dtype, device=device, source=str(path))

    @classmethod
    def default(cls, dtype: torch.dtype = torch.float32, device: str | torch.device | None = "auto") -> BodyModel:
        """The stand-in body model shipped with mpenv (SMPL's structure, procedural mesh, PCA shape space;
        not SMPL: see :mod:`vision3d.body.default_model`). Real SMPL files plug in via :meth:`load`."""
        from vision3d.body.default_model import default_model_path

        return cls.load(default_model_path(), dtype=dtype, device=device)

    @property
    def num_betas(self) -> int:
        return self.shapedirs.shape[-1]

    @property
    def num_vertices(self) -> int:
        return self.v_template.shape[0]

    @property
    def dtype(self) -> torch.dtype:
        return self.v_template.dtype

    @property
    def device(self) -> torch.device:
        return self.v_template.device

    def extra_repr(self) -> str:
        return f"vertices={self.num_vertices}, joints={N_JOINTS}, num_betas={self.num_betas}, source={self.source!r}"

    def regressed_arrays(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(J_regressor T [24, 3], J_regressor S [24, 3, B])``, so that ``J(beta) = J_regressor T +
        (J_regressor S) beta`` (:func:`~vision3d.body.lbs.joint_arrays`). Computed once and kept until one of the
        three buffers changes (``.to()``, ``load_state_dict``, an in-place edit: each gives a new storage or
        version)."""
        sources = (self.J_regressor, self.v_template, self.shapedirs)
        if any(t.requires_grad for t in sources):  # a cached graph could not be backpropagated twice
            return joint_arrays(*sources)
        # Inference tensors carry no version counter; for them only a new storage invalidates the cache.
        key = tuple((t.data_ptr(), t.dtype, -1 if t.is_inference() else t._version) for t in sources)
        if self._regressed is None or key != self._regressed_from:
            self._regressed, self._regressed_from = joint_arrays(*sources), key
        return self._regressed

    def _rotations(
        self, global_orient: torch.Tensor | None, body_pose: torch.Tensor | None, pose2rot: bool, batch: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(global_orient, body_pose, full_pose, rotation matrices [B, 24, 3, 3]) with defaults filled in."""
        per_joint = (3,) if pose2rot else (3, 3)
        parts = []
        for name, value, count in (("global_orient", global_orient, 1), ("body_pose", body_pose, N_JOINTS - 1)):
            if value is None:  # rest pose: zero axis-angle or identity matrices
                value = (
                    torch.zeros(1, 3 * count, **self._factory)
                    if pose2rot
                    else torch.eye(3, **self._factory).expand(1, count, 3, 3)
                )
            value = _as_tensor(value, self.v_template)
            size = count * int(np.prod(per_joint))
            if value.ndim < 2 or value[0].numel() != size:
                raise ValueError(
                    f"{name} must have {count} x {'3 (axis-angle)' if pose2rot else '3x3 (rotation matrix)'} "
                    f"values per batch element, got shape {tuple(value.shape)}"
                )
            parts.append(value.expand(batch, *value.shape[1:]) if value.shape[0] == 1 else value)
        if pose2rot:
            full_pose = torch.cat([p.reshape(batch, -1) for p in parts], dim=1)  # [B, 72]
            rotations = axis_angle_to_matrix(full_pose.reshape(batch, N_JOINTS, 3))
        else:
            full_pose = torch.cat([p.reshape(batch, -1, 3, 3) for p in parts], dim=1)  # [B, 24, 3, 3]
            rotations = full_pose
        return parts[0], parts[1], full_pose, rotations

    @property
    def _factory(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "device": self.device}

    def forward(
        self,
        betas: torch.Tensor | None = None,
        global_orient: torch.Tensor | None = None,
        body_pose: torch.Tensor | None = None,
        transl: torch.Tensor | None = None,
        pose2rot: bool = True,
        return_verts: bool = True,
        return_full_pose: bool = True,
        pose_correctives: bool = True,
    ) -> BodyOutput:
        """Posed mesh and joints, as ``smplx.SMPL.forward``.

        ``betas [B, b]`` (``b <= num_betas``; the first ``b`` components), ``transl [B, 3]``; with
        ``pose2rot=True`` axis-angle ``global_orient [B, 3]`` and ``body_pose [B, 69]``, otherwise rotation
        matrices ``global_orient [B, 1, 3, 3]`` / ``[B, 3, 3]`` and ``body_pose [B, 23, 3, 3]``. Missing inputs
        are the rest pose / mean shape / no translation. ``pose_correctives=False`` gives plain LBS.
        """
        named = {"betas": betas, "global_orient": global_orient, "body_pose": body_pose, "transl": transl}
        given = {name: _as_tensor(v, self.v_template) for name, v in named.items() if v is not None}
        _check_finite(given)
        betas, global_orient, body_pose, transl = (given.get(name) for name in named)
        sizes = {int(v.shape[0]) for v in given.values() if v.ndim > 1} - {1}
        if len(sizes) > 1:
            raise ValueError(f"inconsistent batch sizes {sorted(sizes)} (each input needs B or 1 rows)")
        batch = sizes.pop() if sizes else 1

        betas = torch.zeros(1, self.num_betas, **self._factory) if betas is None else _as_tensor(betas, self.v_template)
        if betas.ndim != 2 or betas.shape[1] > self.num_betas:
            raise ValueError(f"betas must be [B, b] with b <= num_betas={self.num_betas}, got {tuple(betas.shape)}")
        betas = betas.expand(batch, -1)
        if transl is not None:
            if transl.shape[-1:] != (3,) or transl.numel() not in (3, 3 * batch):
                raise ValueError(f"transl must be [B, 3] or [1, 3] with B = {batch}, got {tuple(transl.shape)}")
            transl = transl.reshape(-1, 3).expand(batch, 3)
        global_orient, body_pose, full_pose, rotations = self._rotations(global_orient, body_pose, pose2rot, batch)

        out = lbs(
            betas,
            rotations,
            self.v_template,
            self.shapedirs,
            self.posedirs,
            self.J_regressor,
            self._parent_list,
            self.weights,
            pose_correctives=pose_correctives,
            regressed=self.regressed_arrays(),
        )
        vertices, joints, transforms = out.vertices, out.joints, out.transforms
        if transl is not None:
            # In place: these are fresh tensors of this call, and no backward formula needs them.
            vertices += transl[:, None, :]
            joints += transl[:, None, :]
            # Folded into G_k so that vertices == skin(rest, weights, transforms) still holds (weights sum to 1).
            transforms[..., :3, 3] += transl[:, None, :]
        return BodyOutput(
            vertices=vertices if return_verts else None,
            joints=joints,
            full_pose=full_pose if return_full_pose else None,
            transforms=transforms,
            betas=betas,
            global_orient=global_orient,
            body_pose=body_pose,
            v_shaped=out.shaped,
        )


def random_model_arrays(seed: int, n_vertices: int = 6890, n_faces: int = 13776, n_betas: int = 10) -> dict:
    """A random but valid model in the official files' layout (``posedirs [V, 3, 207]``, ``kintree_table``
    (2, 24) with uint32(-1) for the root), SMPL-sized by default: for tests and benchmarks that need the
    SMPL format without the licensed data. Not a body: the vertices are noise."""
    rng = np.random.default_rng(seed)
    weights = rng.random((n_vertices, N_JOINTS)) ** 4  # peaked, like real skinning weights
    weights /= weights.sum(axis=1, keepdims=True)
    regressor = rng.random((N_JOINTS, n_vertices)) * (rng.random((N_JOINTS, n_vertices)) < 0.05)
    regressor[np.arange(N_JOINTS), rng.integers(0, n_vertices, N_JOINTS)] += 1.0  # no empty row
    regressor /= regressor.sum(axis=1, keepdims=True)
    kintree = np.stack([np.array(PARENTS, dtype=np.int64) % 2**32, np.arange(N_JOINTS)]).astype(np.uint32)
    return {
        "v_template": rng.normal(scale=0.4, size=(n_vertices, 3)),
        "shapedirs": rng.normal(scale=0.02, size=(n_vertices, 3, n_betas)),
        "posedirs": rng.normal(scale=0.02, size=(n_vertices, 3, 207)),
        "J_regressor": regressor,
        "weights": weights,
        "kintree_table": kintree,
        "f": rng.integers(0, n_vertices, size=(n_faces, 3)).astype(np.uint32),
    }
