"""Safe .npz files: an atomic ``save_npz`` and a ``load_npz`` that never runs pickled code.

The file layer under ``mibun.checkpoint`` (which re-exports both). ``save_npz`` writes to a
temporary name in the same directory, flushes it to disk and renames it over the old file;
``load_npz`` reads every member's ``.npy`` header first, refuses pickled or oversized members
and lets a caller check names, shapes and dtypes before any data is read.
"""
from __future__ import annotations

import math
import os
import re
import signal
import threading
import zipfile
import zlib

import numpy as np

from mibun import backend

__all__ = ["DEFLATE_MAX_RATIO", "load_npz", "save_npz"]


def save_npz(path, arrays: dict, compress: bool = False) -> None:
    """Write ``arrays`` (name -> ndarray) to ``path`` as an .npz, atomically.

    The name is used as given (no ``.npz`` is appended, unlike ``np.savez``). Object
    arrays are refused, so the file can always be loaded with ``allow_pickle=False``.

    Args:
        path (str or PathLike): destination file; its directory must exist.
        arrays (dict): str -> NumPy or CuPy array (CuPy arrays are copied to the host).
        compress (bool): deflate the members (smaller, slower).
    Raises:
        TypeError: a name is not a str, or an array has dtype object.
    """
    path = os.fspath(path)
    items = []
    for name, a in arrays.items():
        if not isinstance(name, str):
            raise TypeError(f"save_npz: array names must be str, got {type(name).__name__}")
        a = np.asarray(backend.as_numpy(a))
        if a.dtype.hasobject:
            raise TypeError(f"save_npz: {name!r} has dtype object, which cannot be saved "
                            "without pickle; convert it to a numeric or str array")
        items.append((name, a))

    directory = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    _remove_stale_temps(directory, base)
    fd, tmp = _create_temp(directory, base)
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with _TermCleanup():
        try:
            with os.fdopen(fd, "wb") as f:
                with zipfile.ZipFile(f, "w", compression=method, allowZip64=True) as zf:
                    for name, a in items:
                        with zf.open(name + ".npy", "w", force_zip64=True) as member:
                            np.lib.format.write_array(member, a, allow_pickle=False)
                f.flush()
                os.fsync(f.fileno())  # the data is on disk before the rename shows it
            try:  # an existing file keeps its mode, as open(path, "w") would keep it
                os.chmod(tmp, os.stat(path).st_mode & 0o7777)
            except FileNotFoundError:
                pass
            os.replace(tmp, path)
        except BaseException:  # Ctrl-C, SIGTERM (see _TermCleanup): never leave the temp file
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
    _fsync_dir(directory)


# Temporary files are named ".<file>.<pid>-<random>.tmp": the pid tells a later save whether
# the writer is still running, or was killed (SIGKILL, power loss) and left the file behind.
_TEMP = re.compile(r"\.(?P<base>.+)\.(?P<pid>\d+)-[0-9a-f]+\.tmp\Z")


def _create_temp(directory, base):
    """Create and open a new temporary file beside the target, mode 0666 less the umask."""
    while True:
        tmp = os.path.join(directory, f".{base}.{os.getpid()}-{os.urandom(4).hex()}.tmp")
        try:  # as open() creates a file: the kernel applies the umask to 0o666
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                           | getattr(os, "O_BINARY", 0), 0o666), tmp
        except FileExistsError:
            continue


def _pid_running(pid: int) -> bool:
    if os.name != "posix":  # os.kill(pid, 0) would terminate the process on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists but belongs to someone else
        return True
    return True


def _remove_stale_temps(directory, base):
    """Delete temporary files of ``base`` left by saves whose process has died."""
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        m = _TEMP.match(name)
        if m and m["base"] == base and not _pid_running(int(m["pid"])):
            try:
                os.unlink(os.path.join(directory, name))
            except OSError:
                pass


class _Terminated(BaseException):
    """Raised by the SIGTERM handler of ``_TermCleanup`` to unwind a save."""


class _TermCleanup:
    """During a save, turn SIGTERM into an exception (so the temporary file is removed, as
    on Ctrl-C), then let the process die of SIGTERM as it would have.

    Only where Python runs signal handlers (the main thread) and only if SIGTERM has its
    default action: a program with its own SIGTERM handler keeps it.
    """

    def __enter__(self):
        self.installed = self.received = False
        if (threading.current_thread() is threading.main_thread()
                and hasattr(signal, "SIGTERM")
                and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL):
            signal.signal(signal.SIGTERM, self._handle)
            self.installed = True
        return self

    def _handle(self, signum, frame):
        self.received = True  # remembered: zipfile may replace the exception with its own
        raise _Terminated

    def __exit__(self, kind, value, tb):
        if self.installed:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            if self.received:  # cleaned up: now die of the signal, as intended
                signal.raise_signal(signal.SIGTERM)
        return False


def _fsync_dir(directory: str) -> None:
    # Make the rename itself durable. Not every platform can open a directory (Windows).
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# What reading a damaged or hostile zip can raise (RuntimeError: encrypted; NotImplementedError,
# a RuntimeError: an unknown compression method).
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, ValueError, EOFError, OSError, KeyError,
                RuntimeError)
# Deflate expands at most ~1032:1; a member that claims more bytes than its compressed data
# can produce is lying about its size (and would make the reader allocate it).
DEFLATE_MAX_RATIO = 1100


def _bad_file(what, path, detail):
    return ValueError(f"{what}: cannot read {path!r}: it is not a complete .npz of plain "
                      f"arrays (truncated, corrupted or pickled?): {detail}")


class _Npz:
    """An open .npz whose members' headers are read and checked, but no data yet.

    ``headers`` maps each array name to ``(shape, dtype)``, from the ``.npy`` headers; a
    member that is not a plain ``.npy`` array, or whose declared size does not match the
    bytes the archive holds for it, is refused here, before anything is allocated.
    ``stand_ins()`` gives arrays of those shapes and dtypes that take no memory, for
    checking names, shapes and dtypes against a model; ``read(name)`` reads one array.
    """

    def __init__(self, path, what):
        self.path, self.what = path, what
        if not os.path.exists(path):
            raise FileNotFoundError(f"{what}: no such file: {path!r}")
        try:
            self.zf = zipfile.ZipFile(path)
        except _READ_ERRORS as e:
            raise _bad_file(what, path, e) from e
        try:
            self.headers, self.infos = {}, {}
            size = os.path.getsize(path)
            for info in self.zf.infolist():
                self._header(info, size)
        except BaseException:
            self.zf.close()
            raise

    def _header(self, info, archive_size):
        what, path, fn = self.what, self.path, info.filename
        if not fn.endswith(".npy") or info.is_dir():
            raise ValueError(f"{what}: {path!r}: member {fn!r} is not an .npy array (an .npz "
                             "of plain arrays holds only NAME.npy members)")
        name = fn[:-4]
        if name in self.headers:
            raise ValueError(f"{what}: {path!r}: member {fn!r} appears twice")
        packed = info.compress_size
        if info.header_offset + packed > archive_size or (
                info.compress_type == zipfile.ZIP_STORED and info.file_size != packed) or (
                info.file_size > DEFLATE_MAX_RATIO * packed + 1024):
            raise _bad_file(what, path, f"member {fn!r} claims {info.file_size} bytes from "
                                        f"{packed} stored bytes")
        try:
            with self.zf.open(info) as fp:
                version = np.lib.format.read_magic(fp)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(fp)
                elif version == (2, 0):
                    shape, _, dtype = np.lib.format.read_array_header_2_0(fp)
                else:
                    raise ValueError(f".npy format version {version} is not supported")
                offset = fp.tell()
        except _READ_ERRORS as e:
            raise _bad_file(what, path, f"member {fn!r}: {e}") from e
        if dtype.hasobject:
            raise _bad_file(what, path, f"member {fn!r} holds Python objects (pickled data, "
                                        "which is never loaded)")
        nbytes = math.prod(shape) * dtype.itemsize
        if offset + nbytes != info.file_size:
            raise _bad_file(what, path, f"member {fn!r} declares shape {shape} of {dtype} "
                                        f"({nbytes} bytes) but holds {info.file_size - offset}")
        self.headers[name] = (shape, dtype)
        self.infos[name] = info

    def stand_ins(self, prefix=""):
        """``{name without prefix: zero-stride array}`` with each member's shape and dtype."""
        n = len(prefix)
        return {name[n:]: np.broadcast_to(np.zeros((), dtype), shape)
                for name, (shape, dtype) in self.headers.items() if name.startswith(prefix)}

    def read(self, name):
        try:
            with self.zf.open(self.infos[name]) as fp:
                a = np.lib.format.read_array(fp, allow_pickle=False)
                fp.read(1)  # to the end of the member, where zipfile checks the CRC
        except _READ_ERRORS as e:
            raise _bad_file(self.what, self.path, f"member {name!r}: {e}") from e
        return a

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.zf.close()


def load_npz(path, what: str = "load_npz", check=None, prefix: str = "") -> dict:
    """Read the arrays of the .npz ``path`` into a dict, refusing pickled data.

    Every member's ``.npy`` header is read and checked first (a plain numeric or string
    array, its declared size matching the bytes the archive holds); ``check``, if given, is
    called on stand-ins with the arrays' names, shapes and dtypes before any data is read,
    so a file that does not fit is refused without allocating what it declares.

    Args:
        path (str or PathLike): the file.
        what (str): the caller's name, used in error messages.
        check (callable or None): ``check({name: array-like})``; raises to refuse the file.
        prefix (str): read only the arrays whose names start with it (names kept whole).
    Returns:
        dict: name -> NumPy array.
    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a complete .npz of plain arrays (truncated, corrupted,
            not an .npz, holding pickled objects or members that are not .npy arrays).
    """
    with _Npz(os.fspath(path), what) as f:
        if check is not None:
            check({k: v for k, v in f.stand_ins().items() if k.startswith(prefix)})
        return {name: f.read(name) for name in f.headers if name.startswith(prefix)}
