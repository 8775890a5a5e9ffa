"""Reading the data sets' original files safely, and finding or downloading them.

* ``load_idx``: MNIST's idx format (gzipped or not), its header checked against the file
  before anything is allocated;
* ``load_cifar_batch``: a CIFAR-10 python batch, a pickle, read by ``CifarUnpickler``,
  which builds only plain arrays, dicts, lists, strings and numbers (a pickle can run any
  code it names);
* ``find_or_download``: the files in a directory given, the known places or the cache,
  else downloaded once into the cache (``mibun.utils.cache_dir()``).

:mod:`mibun.datasets` builds its ``MNIST``, ``FashionMNIST`` and ``CIFAR10`` on these.
"""
from __future__ import annotations

import gzip
import io
import math
import os
import pickle
import struct
import zlib

import numpy as np

from mibun import npzfile, utils

__all__ = ["CifarUnpickler", "find_or_download", "load_cifar_batch", "load_idx"]


# =============================================================================
# idx files (MNIST) and where the files are
# =============================================================================
_IDX_TYPES: dict = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4",
              0x0E: ">f8"}


def load_idx(path) -> np.ndarray:
    """Read an idx file (the MNIST format), gzipped or not, into a native-endian ndarray.

    The header is checked first: the size it declares must be what the file holds (for a
    ``.gz``, no more than its compressed bytes can expand to), so a damaged or hostile
    header is refused before anything is allocated.

    Args:
        path (str or PathLike): the file (``.gz``: gzip-compressed).
    Raises:
        ValueError: the header or the size does not match (the message names the file).
    """
    path = os.fspath(path)
    gz = path.endswith(".gz")
    try:
        size = os.path.getsize(path)
        with (gzip.open if gz else open)(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _IDX_TYPES:
                raise ValueError(f"datasets.load_idx: {path} is not an idx file "
                                 f"(header {head.hex() or 'empty'})")
            dtype = np.dtype(_IDX_TYPES[head[2]])
            ndim = head[3]
            raw_dims = f.read(4 * ndim)
            if len(raw_dims) < 4 * ndim:
                raise ValueError(f"datasets.load_idx: {path} is truncated (in its header)")
            dims = struct.unpack(">" + "I" * ndim, raw_dims)
            nbytes = math.prod(dims) * dtype.itemsize  # Python ints: no overflow
            start = 4 + 4 * ndim
            says = f"its header says shape {dims} of {dtype} ({nbytes} bytes)"
            if not gz and nbytes != size - start:
                raise ValueError(f"datasets.load_idx: {path} holds {size - start} data "
                                 f"bytes, but {says}")
            if gz and nbytes > npzfile.DEFLATE_MAX_RATIO * size:  # more than gzip can hold
                raise ValueError(f"datasets.load_idx: {path} is {size} bytes of gzip, too "
                                 f"few for what {says}")
            data = f.read(nbytes + 1)
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:  # a damaged or partial download
        raise ValueError(f"datasets.load_idx: {path} is damaged ({e}); delete it and "
                         "fetch it again") from e
    if len(data) != nbytes:
        held = f"{len(data)}" if len(data) < nbytes else f"more than {nbytes}"
        raise ValueError(f"datasets.load_idx: {path} holds {held} data bytes, but {says}")
    a = np.frombuffer(data, dtype=dtype).reshape(dims)
    return a.astype(dtype.newbyteorder("="))  # a writable native-order copy


def _missing(name, files, dirs, urls, error, hint=""):
    where = "\n".join(f"    {d}" for d in dirs)
    msg = (f"datasets.{name}: cannot find {', '.join(files)}{hint}\n  looked in:\n{where}\n"
           f"  Put the files (the original downloads) in one of these directories, or pass "
           f"root=<directory>.")
    if error is not None:
        msg += f"\n  Download from {', '.join(urls)} failed: {error}"
    return FileNotFoundError(msg)


def find_or_download(name, files, root, search_dirs, subdir, urls, download, hint="",
                      dezero_cache=False):
    """Return local paths of ``files``: from root, search_dirs, the cache, or a download.

    A file ``x.gz`` may also be found uncompressed as ``x``. With ``dezero_cache``, DeZero's
    download folder ``~/.dezero`` (where a DeZero user already has the same files) is
    searched after mibun's cache, before downloading.
    """
    cache = os.path.join(utils.cache_dir(), subdir)
    dirs = [root] if root is not None else [*search_dirs, cache]
    if root is None and dezero_cache:
        dirs.append(os.path.join(os.path.expanduser("~"), ".dezero"))
    for d in dirs:
        paths = []
        for f in files:
            cands = [os.path.join(d, f)]
            if f.endswith(".gz"):
                cands.append(os.path.join(d, f[:-3]))
            found = next((c for c in cands if os.path.isfile(c)), None)
            if found is None:
                break
            paths.append(found)
        else:
            return paths
    if not download:
        raise _missing(name, files, dirs, urls, None, hint)
    target = root if root is not None else cache
    paths = []
    for f in files:
        error = None
        for base in urls:
            try:
                paths.append(utils.get_file(base + f, cache=target))
                break
            except ConnectionError as e:
                error = e
        else:
            raise _missing(name, files, dirs, urls, error, hint) from error
    return paths


# =============================================================================
# CIFAR-10 python batches (pickles)
# =============================================================================
def _ndarray_called(*args):
    """Stands for ``numpy.ndarray`` in a CIFAR pickle: a legitimate array names the class
    only as ``_reconstruct``'s first argument; calling it (REDUCE) would build an array of
    any shape and dtype from uninitialised memory, object arrays included."""
    raise pickle.UnpicklingError("numpy.ndarray is called directly (not through "
                                 "_reconstruct): refusing to build an array that way")


class CifarUnpickler(pickle.Unpickler):
    """Unpickle only dicts, lists, str, bytes, ints and plain numeric NumPy arrays.

    CIFAR's python batches are pickles; a pickle can run any code it names. This loader
    resolves only the few globals a NumPy array needs, each replaced by a checked
    constructor, and rejects everything else (and object arrays). An array is created
    zero-filled and no larger than the file itself (its data must come from the file).
    """

    def __init__(self, file, source, limit=None):
        super().__init__(file, encoding="bytes")
        self.source = source  # named by the caller's message (see load_cifar_batch)
        # bytes: no array may be larger than the file
        self.limit = len(file.getbuffer()) if limit is None else limit

    def find_class(self, module, name):
        if name == "_reconstruct" and module in ("numpy.core.multiarray",
                                                 "numpy._core.multiarray"):
            return self._reconstruct
        if module == "numpy" and name == "ndarray":
            return _ndarray_called
        if module == "numpy" and name == "dtype":
            return self._dtype
        if (module, name) == ("_codecs", "encode"):  # bytes pickled by Python 3, protocol 2
            return self._encode
        raise pickle.UnpicklingError(
            f"it asks for {module}.{name}; only NumPy arrays, dicts, lists, "
            "bytes, str and ints are allowed (refusing to run pickle code)")

    def _check(self, dtype):
        if dtype.hasobject:
            raise pickle.UnpicklingError("it holds an object array; refusing to load it")
        return dtype

    def _reconstruct(self, subtype, shape, dtype):
        if subtype is not _ndarray_called:
            raise pickle.UnpicklingError(f"unexpected array type {subtype!r:.60}")
        dtype = self._check(np.dtype(dtype))
        if not (isinstance(shape, tuple) and all(
                isinstance(n, int) and n >= 0 for n in shape)):
            raise pickle.UnpicklingError(f"bad array shape {shape!r:.60}")
        if math.prod(shape) * dtype.itemsize > self.limit:
            raise pickle.UnpicklingError(f"it declares a {shape} {dtype} array, larger "
                                         f"than the file ({self.limit} bytes)")
        return np.zeros(shape, dtype)

    def _dtype(self, *args):
        return self._check(np.dtype(*args))

    @staticmethod
    def _encode(text, encoding="latin1"):
        if encoding not in ("latin1", "latin-1"):
            raise pickle.UnpicklingError(f"unexpected encoding {encoding!r}")
        return text.encode("latin1")


class BadPickle(pickle.UnpicklingError, ValueError):
    """A CIFAR batch that cannot or must not be unpickled: a ValueError (bad file content)
    that is also the UnpicklingError it always was."""


_CIFAR_CLASSES = 10


def load_cifar_batch(raw: bytes, source: str):
    """``(images uint8 (N, 3, 32, 32), labels int64 (N,))`` of one CIFAR-10 batch's bytes;
    a ValueError naming ``source`` for anything else."""
    try:
        d = CifarUnpickler(io.BytesIO(raw), source).load()
    except Exception as e:  # noqa: BLE001  (a hostile or damaged pickle raises any type)
        raise BadPickle(f"datasets.CIFAR10: {source} is not a CIFAR-10 batch: cannot "
                         f"unpickle it ({type(e).__name__}: {e})") from None
    if not isinstance(d, dict):
        raise ValueError(  # noqa: TRY004  (a bad file, not a bad argument)
            f"datasets.CIFAR10: {source} holds a {type(d).__name__}, expected a dict")
    data = d.get(b"data", d.get("data"))
    labels = d.get(b"labels", d.get("labels"))
    if not (isinstance(labels, list) or (type(labels) is np.ndarray and labels.ndim == 1)):
        labels = None
    if type(data) is not np.ndarray or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3072 or labels is None or len(labels) != len(data):
        shape = getattr(data, "shape", None)
        raise ValueError(f"datasets.CIFAR10: {source} must hold 'data' uint8 (N, 3072) and "
                         f"a list of N 'labels'; found data {shape}, "
                         f"{None if labels is None else len(labels)} labels")
    try:
        t = np.asarray(labels)
    except (OverflowError, ValueError):  # ints beyond int64, ragged lists
        t = np.asarray([], dtype=object)
    if len(t) and (t.dtype.kind not in "iu" or t.ndim != 1 or t.min() < 0
                   or t.max() >= _CIFAR_CLASSES):
        raise ValueError(f"datasets.CIFAR10: {source}: the labels must be integers in 0.."
                         f"{_CIFAR_CLASSES - 1}; found {t.dtype} values"
                         + (f" from {t.min()} to {t.max()}" if t.dtype.kind in "iufb" and
                            t.ndim == 1 else ""))
    return data.reshape(-1, 3, 32, 32), t.astype(np.int64)
