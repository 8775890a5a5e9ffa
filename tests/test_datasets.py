"""Datasets: generated (Spiral, SinCurve), bundled Digits, and file loaders (MNIST-like idx
files, CIFAR-10 pickles) on small files made here; downloads (get_file) without a network."""
import gzip
import io
import os
import pickle
import socket
import struct
import tarfile

import numpy as np
import pytest

import mibun
from mibun import datafiles, datasets, transforms, utils


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    # Never read or write the user's ~/.mibun in tests.
    monkeypatch.setenv("MIBUN_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


# --- generated --------------------------------------------------------------------------
def test_spiral_is_dezeros_data_without_touching_global_rng():
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    ds = datasets.Spiral()
    assert np.array_equal(np.random.get_state()[1], before)
    assert len(ds) == 300 and ds.data.shape == (300, 2) and ds.data.dtype == np.float32
    assert ds.label.dtype == np.int64 and set(ds.label.tolist()) == {0, 1, 2}
    # DeZero 0.0.13's get_spiral(train=True) starts with these (it reseeds with 1984)
    np.testing.assert_allclose(ds.data[:2], [[-0.13981389, -0.00721657],
                                             [0.37049392, 0.5820947]], rtol=1e-6)
    assert ds.label[:5].tolist() == [1, 1, 2, 0, 1]
    test = datasets.Spiral(train=False)
    np.testing.assert_allclose(test.data[0], [0.13246453, 0.13620993], rtol=1e-6)
    x, t = ds[0]
    assert x.shape == (2,) and int(t) == 1


def test_sin_curve():
    train, test = datasets.SinCurve(train=True), datasets.SinCurve(train=False)
    for ds in (train, test):
        assert ds.data.shape == (999, 1) and ds.label.shape == (999, 1)
        assert ds.data.dtype == np.float32
        assert np.array_equal(ds.data[1:], ds.label[:-1])  # predict the next step
    xs = np.linspace(0, 2 * np.pi, 1000)
    np.testing.assert_allclose(test.data[:, 0], np.cos(xs[:-1]), atol=1e-6)
    assert np.max(np.abs(train.data[:, 0] - np.sin(xs[:-1]))) <= 0.05 + 1e-6
    assert np.array_equal(train.data, datasets.SinCurve().data)  # reproducible


# --- bundled digits ---------------------------------------------------------------------
def test_digits_split_is_fixed_disjoint_and_complete():
    train, test = datasets.Digits(), datasets.Digits(train=False)
    assert len(train) == 1437 and len(test) == 360
    for ds in (train, test):
        assert ds.data.dtype == np.float32 and ds.data.shape[1:] == (64,)
        assert ds.data.min() == 0.0 and ds.data.max() == 1.0
        assert ds.label.dtype == np.int64 and set(ds.label.tolist()) == set(range(10))
    # the documented split: RandomState(0).permutation(1797), first 1,437 for training
    x, t = datasets.load_digits()
    perm = np.random.RandomState(0).permutation(1797)
    assert np.array_equal(train.data, x[perm[:1437]] / 16.0)
    assert np.array_equal(test.label, t[perm[1437:]])
    assert train.label[:10].tolist() == [2, 8, 2, 6, 6, 7, 1, 9, 8, 5]
    assert test.label[:10].tolist() == [7, 9, 4, 7, 0, 2, 6, 1, 3, 1]
    assert train.data.sum(dtype=np.float64) == 28086.625
    rows = {r.tobytes() + bytes([k]) for r, k in zip(x, t)}
    assert len(rows) > 1700  # distinct images, so the next check means something
    seen = [r.tobytes() for r in np.concatenate([train.data, test.data]) * 16]
    assert sorted(seen) == sorted(r.astype(np.float32).tobytes() for r in x)


def test_digits_file_and_attribution_are_shipped():
    x, t = datasets.load_digits()
    assert x.shape == (1797, 64) and x.dtype == np.uint8 and x.max() == 16
    assert np.bincount(t).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    here = os.path.join(os.path.dirname(datasets.__file__), "datasets_data")
    with open(os.path.join(here, "DIGITS-LICENSE.txt")) as f:
        text = f.read()
    for needed in ("Alpaydin", "Kaynak", "CC BY 4.0", "scikit-learn", "BSD 3-Clause"):
        assert needed in text
    x[0, 0] = 99  # load_digits returns copies
    assert datasets.load_digits()[0][0, 0] == 0


def test_digits_for_cnns_and_transforms():
    ds = datasets.Digits(flatten=False)
    assert ds.data.shape == (1437, 1, 8, 8)
    assert np.array_equal(ds.data.reshape(1437, 64), datasets.Digits().data)
    ds = datasets.Digits(transform=transforms.Normalize(0.5, 0.5),
                         target_transform=transforms.AsType(np.int32))
    x, t = ds[3]
    assert x.dtype == np.float32 and x.min() >= -1 and t.dtype == np.int32
    xb, tb = ds.get_batch(np.array([3, 4]))
    assert np.array_equal(xb[0], x) and tb.dtype == np.int32


@pytest.mark.slow
def test_mlp_reaches_97_percent_on_digits():
    import mibun.functions as F
    np.random.seed(0)
    train, test = datasets.Digits(), datasets.Digits(train=False)
    model = mibun.models.MLP((100, 10), activation=F.relu)
    opt = mibun.optimizers.Adam(alpha=0.003).setup(model)  # 0.978..0.986 over 5 seeds
    loader = mibun.DataLoader(train, batch_size=64, seed=0)
    for _ in range(40):
        for x, t in loader:
            loss = F.softmax_cross_entropy(model(x), t)
            model.cleargrads()
            loss.backward()
            opt.update()
    with mibun.no_grad():
        acc = float(F.accuracy(model(test.data), test.label).data)
    assert acc >= 0.97


# --- idx files (MNIST, Fashion-MNIST) -------------------------------------------------------
def write_idx(path, array, compress=True):
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D}
    a = np.asarray(array)
    header = bytes([0, 0, codes[a.dtype], a.ndim]) + struct.pack(">" + "I" * a.ndim, *a.shape)
    raw = header + a.tobytes()
    with (gzip.open if compress else open)(path, "wb") as f:
        f.write(raw)


def write_mnist(directory, n=7, train=True, compress=True, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    t = rng.integers(0, 10, size=n).astype(np.uint8)
    os.makedirs(directory, exist_ok=True)
    stem = "train" if train else "t10k"
    gz = ".gz" if compress else ""
    write_idx(os.path.join(directory, f"{stem}-images-idx3-ubyte{gz}"), x, compress)
    write_idx(os.path.join(directory, f"{stem}-labels-idx1-ubyte{gz}"), t, compress)
    return x, t


@pytest.mark.parametrize("compress", [True, False])
def test_mnist_from_root(tmp_path, compress):
    x, t = write_mnist(tmp_path, n=7, compress=compress)
    write_mnist(tmp_path, n=3, train=False, compress=compress, seed=1)
    ds = datasets.MNIST(root=str(tmp_path), download=False)
    assert ds.data.shape == (7, 1, 28, 28) and ds.data.dtype == np.uint8
    assert np.array_equal(ds.data[:, 0], x) and np.array_equal(ds.label, t)
    assert ds.label.dtype == np.int64
    a, _ = ds[2]  # DeZero's default transform: flatten, float32, / 255
    assert a.shape == (784,) and a.dtype == np.float32
    np.testing.assert_allclose(a, x[2].reshape(-1) / 255.0, rtol=1e-6)
    xb, tb = ds.get_batch(np.array([2, 0]))
    assert np.array_equal(xb[0], a) and tb.tolist() == [t[2], t[0]]
    test = datasets.MNIST(train=False, root=str(tmp_path), download=False, flatten=False)
    assert len(test) == 3 and test[0][0].shape == (1, 28, 28)
    raw = datasets.MNIST(root=str(tmp_path), download=False, transform=None)
    assert raw[0][0].dtype == np.uint8


def test_mnist_from_cache_dir(private_cache):
    x, _ = write_mnist(private_cache / "mnist")
    assert np.array_equal(datasets.MNIST(download=False).data[:, 0], x)
    with pytest.raises(FileNotFoundError):  # Fashion-MNIST has its own cache folder
        datasets.FashionMNIST(download=False, root=str(private_cache / "fashion-mnist"))


def test_mnist_and_cifar10_found_in_dezeros_cache(tmp_path, monkeypatch):
    # a DeZero user already has the downloads in ~/.dezero (flat, DeZero's file names)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    dezero_dir = tmp_path / "home" / ".dezero"
    x, _ = write_mnist(dezero_dir, n=5)
    assert np.array_equal(datasets.MNIST(download=False).data[:, 0], x)
    with pytest.raises(FileNotFoundError, match=r"\.dezero"):  # mibun's own cache is empty
        datasets.MNIST(train=False, download=False)
    with pytest.raises(FileNotFoundError):  # same file names, other data: not taken
        datasets.FashionMNIST(download=False)
    batches = write_cifar(str(dezero_dir), as_tar=True)
    ds = datasets.CIFAR10(train=False, download=False)
    assert ds.label.tolist() == batches["test_batch"][b"labels"]
    x2, _ = write_mnist(tmp_path / "cache" / "mnist", n=3, seed=5)  # mibun's cache first
    assert np.array_equal(datasets.MNIST(download=False).data[:, 0], x2)


def test_fashion_mnist_searches_the_debian_path(tmp_path, monkeypatch):
    assert "/usr/share/datasets/fashion-mnist" in datasets.FashionMNIST.search_dirs
    _, t = write_mnist(tmp_path / "debian", n=4)
    monkeypatch.setattr(datasets.FashionMNIST, "search_dirs", (str(tmp_path / "debian"),))
    ds = datasets.FashionMNIST(download=False)
    assert np.array_equal(ds.label, t)
    assert datasets.FashionMNIST.labels()[9] == "Ankle boot"


def test_mnist_missing_files_name_files_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        datasets.MNIST(root=str(tmp_path), download=False)
    msg = str(e.value)
    assert "train-images-idx3-ubyte.gz" in msg and str(tmp_path) in msg


def test_mnist_offline_fails_fast_with_file_not_found(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.MNIST, "urls", ("http://127.0.0.1:1/",))
    with pytest.raises(FileNotFoundError) as e:
        datasets.MNIST(root=str(tmp_path))
    msg = str(e.value)
    assert "failed" in msg and "127.0.0.1" in msg and str(tmp_path) in msg
    assert os.listdir(tmp_path) == []  # no partial download left behind


def test_mnist_downloads_into_root(tmp_path, monkeypatch):
    src = tmp_path / "server"
    _, t = write_mnist(src)
    monkeypatch.setattr(datasets.MNIST, "urls", ("http://127.0.0.1:1/", src.as_uri() + "/"))
    ds = datasets.MNIST(root=str(tmp_path / "data"))
    assert np.array_equal(ds.label, t)
    assert sorted(os.listdir(tmp_path / "data")) == ["train-images-idx3-ubyte.gz",
                                                     "train-labels-idx1-ubyte.gz"]


def test_load_idx_dtypes_and_errors(tmp_path):
    a = np.arange(24, dtype=">i4").reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", a)
    b = datasets.load_idx(str(tmp_path / "a.gz"))
    assert np.array_equal(b, a) and b.dtype == np.int32 and b.dtype.isnative
    f = np.linspace(0, 1, 5).astype(">f4")
    write_idx(tmp_path / "f", f, compress=False)
    assert np.array_equal(datasets.load_idx(str(tmp_path / "f")), f)
    (tmp_path / "bad").write_bytes(b"PK\x03\x04junk")
    with pytest.raises(ValueError, match="not an idx file"):
        datasets.load_idx(str(tmp_path / "bad"))
    raw = (tmp_path / "f").read_bytes()
    (tmp_path / "short").write_bytes(raw[:-2])
    with pytest.raises(ValueError, match="header says shape"):
        datasets.load_idx(str(tmp_path / "short"))
    # A damaged download (a proxy's HTML page, a cut-off gzip) names the file.
    (tmp_path / "page.gz").write_bytes(b"<html>sign in to the network</html>")
    gz = gzip.compress(raw)
    (tmp_path / "cut.gz").write_bytes(gz[:len(gz) // 2])
    for name in ("page.gz", "cut.gz"):
        with pytest.raises(ValueError, match=f"{name} is damaged .*delete it"):
            datasets.load_idx(str(tmp_path / name))


def test_mnist_mismatched_counts(tmp_path):
    write_mnist(tmp_path, n=5)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match="expected"):
        datasets.MNIST(root=str(tmp_path), download=False)


# --- CIFAR-10 ---------------------------------------------------------------------------
def cifar_batch(n, seed, protocol=2):
    rng = np.random.default_rng(seed)
    d = {b"batch_label": b"training batch", b"labels": rng.integers(0, 10, n).tolist(),
         b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
         b"filenames": [b"img%d.png" % i for i in range(n)]}
    return d, pickle.dumps(d, protocol=protocol)


def write_cifar(directory, as_tar, protocol=2):
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    batches = {n: cifar_batch(2 + k, k, protocol) for k, n in enumerate(names)}
    if as_tar:
        with tarfile.open(os.path.join(directory, "cifar-10-python.tar.gz"), "w:gz") as tar:
            for n, (_, raw) in batches.items():
                info = tarfile.TarInfo(f"cifar-10-batches-py/{n}")
                info.size = len(raw)
                tar.addfile(info, io.BytesIO(raw))
    else:
        folder = os.path.join(directory, "cifar-10-batches-py")
        os.makedirs(folder)
        for n, (_, raw) in batches.items():
            with open(os.path.join(folder, n), "wb") as f:
                f.write(raw)
    return {n: d for n, (d, _) in batches.items()}


@pytest.mark.parametrize("as_tar, protocol", [(True, 2), (False, 2), (False, 4)])
def test_cifar10_from_root(tmp_path, as_tar, protocol):
    batches = write_cifar(tmp_path, as_tar, protocol)
    ds = datasets.CIFAR10(root=str(tmp_path), download=False)
    want = np.concatenate([batches[f"data_batch_{i}"][b"data"] for i in range(1, 6)])
    assert ds.data.shape == (len(want), 3, 32, 32) and ds.data.dtype == np.uint8
    assert np.array_equal(ds.data.reshape(len(want), -1), want)
    assert ds.label.tolist() == [k for i in range(1, 6)
                                 for k in batches[f"data_batch_{i}"][b"labels"]]
    x, _ = ds[0]
    assert x.shape == (3, 32, 32) and x.dtype == np.float32
    assert -1.0 <= x.min() and x.max() <= 1.0
    np.testing.assert_allclose(x, want[0].reshape(3, 32, 32) / 127.5 - 1, rtol=1e-6,
                               atol=1e-6)
    test = datasets.CIFAR10(train=False, root=str(tmp_path), download=False)
    assert np.array_equal(test.label, batches["test_batch"][b"labels"])


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


@pytest.mark.parametrize("payload", [
    {b"data": _Evil(), b"labels": []},
    {b"data": np.array([object()], dtype=object), b"labels": [0]},
])
def test_cifar10_refuses_unsafe_pickles(tmp_path, monkeypatch, payload):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "test_batch").write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="CIFAR10"):
        datasets.CIFAR10(train=False, root=str(tmp_path), download=False)
    assert not (tmp_path / "pwned").exists()


def test_cifar10_bad_content_and_missing(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((2, 5), np.uint8),
                                                      b"labels": [0, 1]}))
    with pytest.raises(ValueError, match="3072"):
        datasets.CIFAR10(train=False, root=str(tmp_path), download=False)
    with pytest.raises(FileNotFoundError, match="cifar-10-python.tar.gz"):
        datasets.CIFAR10(root=str(tmp_path / "nowhere"), download=False)
    # A partial download of the archive is named, not a bare tarfile/EOF error.
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        _, raw = cifar_batch(50, 0)
        info = tarfile.TarInfo("cifar-10-batches-py/test_batch")
        info.size = len(raw)
        tar.addfile(info, io.BytesIO(raw))
    cut = tmp_path / "cut"
    cut.mkdir()
    (cut / "cifar-10-python.tar.gz").write_bytes(buf.getvalue()[:len(buf.getvalue()) // 2])
    with pytest.raises(ValueError, match="cifar-10-python.tar.gz is damaged .*delete it"):
        datasets.CIFAR10(train=False, root=str(cut), download=False)


# --- Dataset protocol -----------------------------------------------------------------------
def test_custom_dataset_dezero_style():
    class Squares(datasets.Dataset):
        def prepare(self):
            self.data = np.arange(5.0)
            self.label = self.data ** 2

    ds = Squares(transform=lambda x: x + 1)
    assert len(ds) == 5 and ds[2] == (3.0, 4.0)
    x, t = ds.get_batch(np.array([1, 2]))  # a lambda has no batch(): example by example
    assert x.tolist() == [2.0, 3.0] and t.tolist() == [1.0, 4.0]
    with pytest.raises(TypeError, match="get_batch"):
        ds[np.array([1, 2])]

    class Unlabelled(datasets.Dataset):
        def prepare(self):
            self.data = np.arange(3)

    assert Unlabelled()[1] == (1, None)
    assert Unlabelled().get_batch(np.array([0, 2]))[1] is None


# --- downloads ----------------------------------------------------------------------------
def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("MIBUN_CACHE", str(tmp_path / "c"))
    assert utils.cache_dir() == str(tmp_path / "c")
    monkeypatch.delenv("MIBUN_CACHE")
    assert utils.cache_dir() == os.path.join(os.path.expanduser("~"), ".mibun")


def test_get_file_downloads_once(tmp_path, private_cache):
    src = tmp_path / "remote.bin"
    src.write_bytes(b"x" * 3000000)
    path = utils.get_file(src.as_uri(), quiet=True)
    assert path == str(private_cache / "remote.bin")
    with open(path, "rb") as f:
        assert f.read() == b"x" * 3000000
    src.unlink()  # the cached copy is used, the source is not read again
    assert utils.get_file(src.as_uri(), quiet=True) == path
    assert os.listdir(private_cache) == ["remote.bin"]  # no temporary files left
    src.write_bytes(b"y")
    other = utils.get_file(src.as_uri(), "other.bin", cache=str(tmp_path / "d"), quiet=True)
    assert other == str(tmp_path / "d" / "other.bin")
    with open(other, "rb") as f:
        assert f.read() == b"y"


def test_get_file_offline_raises_and_leaves_nothing(tmp_path):
    with pytest.raises(ConnectionError, match="could not download"):
        utils.get_file("http://127.0.0.1:1/x.gz", cache=str(tmp_path), quiet=True)
    assert os.listdir(tmp_path) == []


def test_get_file_times_out_instead_of_hanging(tmp_path):
    # A server that accepts the connection but never answers.
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        with pytest.raises(ConnectionError, match="timed out"):
            utils.get_file(f"http://127.0.0.1:{port}/x", cache=str(tmp_path), timeout=0.3,
                           quiet=True)
    finally:
        server.close()
    assert os.listdir(tmp_path) == []


# --- Issue 9: headers checked before allocating; hostile CIFAR pickles and archives ------
def test_load_idx_takes_a_path_and_checks_dims_without_overflow(tmp_path):
    import pathlib
    a = np.arange(6, dtype=np.uint8).reshape(2, 3)
    write_idx(tmp_path / "a.gz", a)
    assert np.array_equal(datasets.load_idx(pathlib.Path(tmp_path / "a.gz")), a)
    # 65536**4 = 2**64 wraps to 0 in int64: the header-only file passed the size check
    (tmp_path / "wrap").write_bytes(b"\0\0\x08\x04" + struct.pack(">IIII", *[65536] * 4))
    with pytest.raises(ValueError, match=r"holds 0 data bytes, but its header says shape "
                                         r"\(65536, 65536, 65536, 65536\)"):
        datasets.load_idx(tmp_path / "wrap")
    # a small .gz declaring 2**40 bytes: refused before reading (deflate cannot hold it)
    (tmp_path / "big.gz").write_bytes(gzip.compress(b"\0\0\x08\x02"
                                                    + struct.pack(">II", 2 ** 20, 2 ** 20)))
    with pytest.raises(ValueError, match="big.gz is .* bytes of gzip, too few"):
        datasets.load_idx(tmp_path / "big.gz")
    (tmp_path / "long.gz").write_bytes(gzip.compress(b"\0\0\x08\x01" + struct.pack(">I", 2)
                                                     + b"abc"))
    with pytest.raises(ValueError, match="long.gz holds more than 2 data bytes"):
        datasets.load_idx(tmp_path / "long.gz")


def _cifar_folder(tmp_path, raw):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir(exist_ok=True)
    (folder / "test_batch").write_bytes(raw)
    return str(tmp_path)


def _s(text):
    b = text.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def _by(b):
    return b"B" + struct.pack("<I", len(b)) + b


def _i(n):
    return b"J" + struct.pack("<i", n)


_ND = b"cnumpy\nndarray\n"


def test_cifar_pickle_cannot_call_ndarray_or_declare_more_than_it_holds(tmp_path):
    n = 2 * 10 ** 9 // 3072  # the 95-byte file that gave a 2 GB uninitialised dataset
    bomb = (b"\x80\x03}(" + _by(b"data") + _ND + b"((" + _i(n) + _i(3072) + b"t" + _s("u1")
            + b"tR" + _by(b"labels") + _ND + b"((" + _i(n) + b"t" + _s("u1") + b"tRu.")
    root = _cifar_folder(tmp_path, bomb)
    with pytest.raises(ValueError, match="test_batch is not a CIFAR-10 batch.*numpy.ndarray "
                                         "is called directly"):
        datasets.CIFAR10(train=False, root=root, download=False)
    obj = b"\x80\x03" + _ND + b"((" + _i(3) + b"t" + _s("O") + b"tR."
    with pytest.raises(pickle.UnpicklingError, match="called directly"):
        datafiles.CifarUnpickler(io.BytesIO(obj), "x").load()
    # _reconstruct (how NumPy pickles arrays) with a shape larger than the file
    rec = (b"\x80\x02cnumpy.core.multiarray\n_reconstruct\n(" + _ND + _i(10 ** 6)
           + b"\x85" + _s("b") + b"tR.")
    with pytest.raises(ValueError, match=r"declares a \(1000000,\) int8 array, larger than "
                                         r"the file"):
        datafiles.load_cifar_batch(rec, "rec")


@pytest.mark.parametrize("labels, match", [
    ([0.0, 1.5], "must be integers in 0..9; found float64"),
    ([0, 2 ** 62], "from 0 to 4611686018427387904"),
    ([0, 2 ** 70], "must be integers"),
    ([0, -1], "from -1 to 0"),
    ([0, 10], "from 0 to 10"),
    ([True, False], "found bool"),
])
def test_cifar_labels_must_be_class_numbers(tmp_path, labels, match):
    d = {b"data": np.zeros((2, 3072), np.uint8), b"labels": labels}
    root = _cifar_folder(tmp_path, pickle.dumps(d, protocol=2))
    with pytest.raises(ValueError, match=match):
        datasets.CIFAR10(train=False, root=root, download=False)


@pytest.mark.parametrize("raw", [b"", b"\x80", os.urandom(64), b"garbage that is no pickle"])
def test_cifar_empty_or_random_files_are_named(tmp_path, raw):
    root = _cifar_folder(tmp_path, raw)
    with pytest.raises(ValueError, match="test_batch is not a CIFAR-10 batch"):
        datasets.CIFAR10(train=False, root=root, download=False)


@pytest.mark.parametrize("kind", [tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_cifar_archive_members_must_be_regular_files(tmp_path, kind):
    with tarfile.open(tmp_path / "cifar-10-python.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo("cifar-10-batches-py/test_batch")
        info.type = kind
        info.linkname = "cifar-10-batches-py/missing"
        tar.addfile(info)
    with pytest.raises(ValueError, match="test_batch is not a regular file"):
        datasets.CIFAR10(train=False, root=str(tmp_path), download=False)
