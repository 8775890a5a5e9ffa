"""Datasets: ``Dataset`` and the data sets of the book, plus bundled handwritten digits.

A dataset holds ``data`` and ``label`` arrays and returns ``(transform(data[i]),
target_transform(label[i]))`` for ``dataset[i]``, as in DeZero. ``get_batch(indices)``
returns a whole stacked batch at once (fancy indexing, and each transform's vectorised
``batch``), which is what ``DataLoader`` uses.

* ``Spiral``, ``SinCurve``: generated (the book's toy data), float32.
* ``Digits``: the real 8x8 handwritten digits (UCI optdigits test set, 1,797 images),
  shipped inside mibun: no download. See ``datasets_data/DIGITS-LICENSE.txt``.
* ``MNIST``, ``FashionMNIST``, ``CIFAR10``: read from a local directory in the original
  file formats (idx-ubyte(.gz); CIFAR's python pickle batches, read with a restricted
  unpickler), else downloaded once into the cache (``mibun.utils.cache_dir()``). Reading
  those files safely is :mod:`mibun.datafiles`' job.
"""
from __future__ import annotations

import functools
import gzip
import os
import tarfile
import zlib

import numpy as np

from mibun import datafiles, utils
from mibun.datafiles import load_idx  # a public name of this module too
from mibun.transforms import Compose, Flatten, Normalize, ToFloat, can_batch

__all__ = [
    "CIFAR10", "MNIST", "Dataset", "Digits", "FashionMNIST", "SinCurve", "Spiral",
    "get_spiral", "load_digits", "load_idx",
]


def _identity(x):
    return x


class Dataset:
    """Base class: set ``self.data`` / ``self.label`` in ``prepare()`` (DeZero's protocol).

    Args:
        train (bool): the training split (True) or the test split (False).
        transform (callable): applied to each example (None: identity).
        target_transform (callable): applied to each label (None: identity).
    """

    def __init__(self, train: bool = True, transform=None, target_transform=None):
        self.train = train
        self.transform = _identity if transform is None else transform
        self.target_transform = _identity if target_transform is None else target_transform
        self.data = None
        self.label = None
        self.prepare()

    def __getitem__(self, index):
        if not np.isscalar(index):
            raise TypeError(f"{type(self).__name__}[index]: index must be an integer, got "
                            f"{type(index).__name__} (use get_batch for many examples)")
        if self.label is None:
            return self.transform(self.data[index]), None
        return self.transform(self.data[index]), self.target_transform(self.label[index])

    def __len__(self):
        return len(self.data)

    def prepare(self):
        pass

    def get_batch(self, indices):
        """The examples at ``indices`` stacked: ``(x, t)`` ndarrays (``t`` None if no labels).

        Uses fancy indexing and the transforms' vectorised ``batch`` when the data is an
        ndarray and the transforms allow it, else stacks ``self[i]`` one by one (always,
        when a subclass overrides ``__getitem__``).
        """
        data, label = self.data, self.label
        tf, ttf = self.transform, self.target_transform
        fast_x = (type(self).__getitem__ is Dataset.__getitem__
                  and isinstance(data, np.ndarray) and (tf is _identity or can_batch(tf)))
        fast_t = label is None or (isinstance(label, np.ndarray)
                                   and (ttf is _identity or can_batch(ttf)))
        if fast_x and fast_t:
            x = data[indices]
            if tf is not _identity:
                x = tf.batch(x)
            if label is None:
                return x, None
            t = label[indices]
            return x, (t if ttf is _identity else ttf.batch(t))
        batch = [self[int(i)] for i in indices]
        x = np.array([b[0] for b in batch])
        if label is None:
            return x, None
        return x, np.array([b[1] for b in batch])


# =============================================================================
# Generated data (the book's)
# =============================================================================
def get_spiral(train: bool = True):
    """DeZero's three-armed spiral: ``(x, t)`` with x (300, 2) float32, t (300,) int64.

    The same numbers as DeZero (seed 1984 for train, 2020 for test), drawn from a private
    ``RandomState`` instead of reseeding NumPy's global generator.
    """
    rs = np.random.RandomState(1984 if train else 2020)
    num_data, num_class, input_dim = 100, 3, 2
    x = np.zeros((num_data * num_class, input_dim), dtype=np.float32)
    t = np.zeros(num_data * num_class, dtype=np.int64)
    for j in range(num_class):
        for i in range(num_data):
            rate = i / num_data
            radius = 1.0 * rate
            theta = j * 4.0 + 4.0 * rate + rs.randn() * 0.2
            ix = num_data * j + i
            x[ix] = radius * np.sin(theta), radius * np.cos(theta)
            t[ix] = j
    indices = rs.permutation(num_data * num_class)
    return x[indices], t[indices]


class Spiral(Dataset):
    """The book's spiral: 300 points in 2-d, 3 classes (``data`` float32, ``label`` int64).

    >>> ds = Spiral()
    >>> len(ds), ds[0][0].shape, ds.data.dtype
    (300, (2,), dtype('float32'))
    """

    def prepare(self):
        self.data, self.label = get_spiral(self.train)


class SinCurve(Dataset):
    """The book's sine wave for RNNs: predict ``y[i+1]`` from ``y[i]`` (999 steps).

    ``train``: sin on [0, 2 pi] plus uniform noise in [-0.05, 0.05] (fixed seed, where
    DeZero used the global generator); test: cos without noise. ``data`` and ``label``
    are float32 of shape (999, 1) (DeZero used float64).
    """

    def prepare(self):
        num_data = 1000
        x = np.linspace(0, 2 * np.pi, num_data)
        if self.train:
            noise = np.random.RandomState(0).uniform(-0.05, 0.05, size=x.shape)
            y = np.sin(x) + noise
        else:
            y = np.cos(x)
        y = y.astype(np.float32)
        self.data = y[:-1][:, np.newaxis]
        self.label = y[1:][:, np.newaxis]


# =============================================================================
# Bundled: handwritten digits (8x8)
# =============================================================================
_DIGITS_FILE = os.path.join(os.path.dirname(__file__), "datasets_data", "digits.csv.gz")
DIGITS_NUM_TRAIN = 1437


@functools.lru_cache(maxsize=1)
def _digits_arrays():
    with gzip.open(_DIGITS_FILE, "rt") as f:
        raw = np.loadtxt(f, delimiter=",", dtype=np.int64)
    if raw.shape != (1797, 65):
        raise ValueError(f"datasets.Digits: {_DIGITS_FILE} has shape {raw.shape}, "
                         "expected (1797, 65): the bundled file is damaged")
    return raw[:, :64].astype(np.uint8), raw[:, 64]


def load_digits():
    """All 1,797 bundled digits: ``(x, t)`` with x (1797, 64) uint8 in 0..16, t int64.

    >>> x, t = load_digits()
    >>> x.shape, int(x.max()), sorted(set(t.tolist())) == list(range(10))
    ((1797, 64), 16, True)
    """
    x, t = _digits_arrays()
    return x.copy(), t.copy()


class Digits(Dataset):
    """Real 8x8 handwritten digits, bundled with mibun (no download).

    The UCI "Optical Recognition of Handwritten Digits" test set (Alpaydin & Kaynak, 1998;
    CC BY 4.0), as shipped by scikit-learn: 1,797 images of 10 classes, pixels 0..16.

    Fixed split: the images are permuted by ``np.random.RandomState(0).permutation(1797)``
    (a frozen stream); the first 1,437 are the training set, the last 360 the test set.

    Args:
        train (bool): 1,437 training images (True) or 360 test images (False).
        transform, target_transform: as in ``Dataset``.
        flatten (bool): ``data`` shaped (N, 64) (True) or (N, 1, 8, 8) for CNNs (False).
    Attributes:
        data (ndarray): float32, pixel / 16, in [0, 1].
        label (ndarray): int64 in 0..9.

    >>> ds = Digits(train=False)
    >>> len(ds), ds.data.shape, ds.data.dtype, float(ds.data.max())
    (360, (360, 64), dtype('float32'), 1.0)
    >>> Digits(flatten=False).data.shape
    (1437, 1, 8, 8)
    """

    def __init__(self, train: bool = True, transform=None, target_transform=None,
                 flatten: bool = True):
        self.flatten = flatten
        super().__init__(train, transform, target_transform)

    def prepare(self):
        x, t = _digits_arrays()
        perm = np.random.RandomState(0).permutation(len(x))
        idx = perm[:DIGITS_NUM_TRAIN] if self.train else perm[DIGITS_NUM_TRAIN:]
        data = x[idx].astype(np.float32) / np.float32(16)
        self.data = data if self.flatten else data.reshape(-1, 1, 8, 8)
        self.label = t[idx].copy()

    @staticmethod
    def labels():
        return {i: str(i) for i in range(10)}


# =============================================================================
# MNIST-like files (idx-ubyte) and CIFAR-10 (python pickle batches), see mibun.datafiles
# =============================================================================
class MNIST(Dataset):
    """MNIST handwritten digits, 28x28 (60,000 train / 10,000 test).

    Looked for in ``root`` (if given) or the cache ``<cache_dir>/mnist``, as the original
    files ``train-images-idx3-ubyte.gz`` etc. (uncompressed copies work too); downloaded
    into that directory when missing and ``download`` is True.

    Args:
        train (bool): training or test split.
        transform: per-example transform; default (as DeZero) flattens to (784,) float32
            in [0, 1]; with ``flatten=False`` the default keeps (1, 28, 28).
        target_transform: per-label transform.
        root (str): directory holding the files.
        download (bool): download missing files.
        flatten (bool): see ``transform``.
    Attributes:
        data (ndarray): uint8 (N, 1, 28, 28), the raw pixels.
        label (ndarray): int64 (N,).
    """

    urls: tuple = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
            "http://yann.lecun.com/exdb/mnist/")
    subdir = "mnist"
    search_dirs: tuple = ()
    dezero_cache = True  # DeZero's MNIST downloads the same files into ~/.dezero
    train_files = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
    test_files = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")

    def __init__(self, train: bool = True, transform="default", target_transform=None,
                 root: str | None = None, download: bool = True, flatten: bool = True):
        if isinstance(transform, str) and transform == "default":
            steps = [Flatten()] if flatten else []
            transform = Compose(steps + [ToFloat(), Normalize(0.0, 255.0)])
        self.root = root
        self.download = download
        super().__init__(train, transform, target_transform)

    def prepare(self):
        files = self.train_files if self.train else self.test_files
        xpath, tpath = datafiles.find_or_download(
            type(self).__name__, files, self.root, self.search_dirs, self.subdir, self.urls,
            self.download, dezero_cache=self.dezero_cache)
        x, t = datafiles.load_idx(xpath), datafiles.load_idx(tpath)
        if x.ndim != 3 or t.ndim != 1 or len(x) != len(t):
            raise ValueError(f"datasets.{type(self).__name__}: images {xpath} have shape "
                             f"{x.shape} and labels {tpath} shape {t.shape}; expected "
                             "(N, H, W) and (N,)")
        self.data = x.reshape(len(x), 1, *x.shape[1:]).astype(np.uint8, copy=False)
        self.label = t.astype(np.int64)

    @staticmethod
    def labels():
        return {i: str(i) for i in range(10)}


class FashionMNIST(MNIST):
    """Fashion-MNIST (Zalando), same format and options as ``MNIST``.

    Also found where Debian's ``dataset-fashion-mnist`` package installs it
    (``/usr/share/datasets/fashion-mnist``); cached in ``<cache_dir>/fashion-mnist``.
    """

    urls = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
    subdir = "fashion-mnist"
    search_dirs = ("/usr/share/datasets/fashion-mnist",)
    dezero_cache = False  # MNIST's file names: ~/.dezero holds DeZero's MNIST, not these

    @staticmethod
    def labels():
        return dict(enumerate(["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]))


_MAX_BATCH_BYTES = 1 << 28  # a CIFAR-10 batch is 31 MB; refuse archive members past 256 MiB


class CIFAR10(Dataset):
    """CIFAR-10: 32x32 colour images of 10 classes (50,000 train / 10,000 test).

    Reads the original python version: ``cifar-10-python.tar.gz`` (read in place, not
    extracted) or its extracted folder ``cifar-10-batches-py`` (``data_batch_1`` ..
    ``data_batch_5``, ``test_batch``), from ``root`` or the cache ``<cache_dir>/cifar10``;
    downloads the archive (163 MB) when missing and ``download`` is True. The batches are
    unpickled by a restricted unpickler that builds only plain arrays, dicts, lists,
    strings and numbers.

    Args:
        train (bool): training or test split.
        transform: default ``Compose([ToFloat(), Normalize(127.5, 127.5)])``: float32 in
            [-1, 1] of shape (3, 32, 32) (DeZero's default normalised 0..255 by 0.5).
        target_transform: per-label transform.
        root (str): directory holding the archive or the extracted folder.
        download (bool): download the archive when missing.
    Attributes:
        data (ndarray): uint8 (N, 3, 32, 32).
        label (ndarray): int64 (N,).
    """

    url = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    archive = "cifar-10-python.tar.gz"
    folder = "cifar-10-batches-py"

    def __init__(self, train: bool = True, transform="default", target_transform=None,
                 root: str | None = None, download: bool = True):
        if isinstance(transform, str) and transform == "default":
            transform = Compose([ToFloat(), Normalize(127.5, 127.5)])
        self.root = root
        self.download = download
        super().__init__(train, transform, target_transform)

    def prepare(self):
        names = [f"data_batch_{i}" for i in range(1, 6)] if self.train else ["test_batch"]
        blobs = self._read(names)
        parts = [datafiles.load_cifar_batch(raw, src) for src, raw in blobs]
        self.data = np.concatenate([p[0] for p in parts])
        self.label = np.concatenate([p[1] for p in parts])

    def _read(self, names):
        """``[(source, bytes)]`` of the named batches, from a folder or the archive."""
        dirs = [self.root] if self.root is not None else [
            os.path.join(utils.cache_dir(), "cifar10")]
        for d in dirs:
            for folder in (os.path.join(d, self.folder), d):
                paths = [os.path.join(folder, n) for n in names]
                if all(os.path.isfile(p) for p in paths):
                    out = []
                    for p in paths:
                        with open(p, "rb") as f:
                            out.append((p, f.read()))
                    return out
        (path,) = datafiles.find_or_download(
            "CIFAR10", [self.archive], self.root, (), "cifar10",
            [self.url.rsplit("/", 1)[0] + "/"], self.download,
            hint=f" (or the extracted folder {self.folder}/)", dezero_cache=True)
        out = []
        try:
            with tarfile.open(path, "r:*") as tar:
                for n in names:
                    try:
                        member = tar.getmember(f"{self.folder}/{n}")
                    except KeyError:
                        raise ValueError(f"datasets.CIFAR10: {path} has no member "
                                         f"{self.folder}/{n}") from None
                    if not member.isfile():  # a directory or a link: no data of its own
                        raise ValueError(f"datasets.CIFAR10: {path}: {member.name} is not a "
                                         "regular file")
                    if member.size > _MAX_BATCH_BYTES:
                        raise ValueError(f"datasets.CIFAR10: {path}: {member.name} is "
                                         f"{member.size} bytes, too large for a CIFAR batch")
                    out.append((f"{path}:{member.name}", tar.extractfile(member).read()))
        except (tarfile.TarError, EOFError, OSError, zlib.error) as e:  # a partial download
            raise ValueError(f"datasets.CIFAR10: {path} is damaged ({e}); delete it and "
                             "fetch it again") from e
        return out

    @staticmethod
    def labels():
        return dict(enumerate(["airplane", "automobile", "bird", "cat", "deer", "dog",
                               "frog", "horse", "ship", "truck"]))
