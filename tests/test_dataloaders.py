"""DataLoader and SeqDataLoader: batching, shuffling, seeding, epochs, drop_last, DeZero use."""
import numpy as np
import pytest

import mibun
from mibun import DataLoader, SeqDataLoader, datasets, transforms


class Range(datasets.Dataset):
    def __init__(self, n, **kw):
        self.n = n
        super().__init__(**kw)

    def prepare(self):
        self.data = np.arange(self.n, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)
        self.label = np.arange(self.n) % 3


def epoch(loader):
    return [(x.copy(), None if t is None else t.copy()) for x, t in loader]


@pytest.mark.parametrize("n, batch_size, drop_last, sizes", [
    (10, 3, False, [3, 3, 3, 1]),
    (10, 3, True, [3, 3, 3]),
    (9, 3, True, [3, 3, 3]),
    (10, 10, False, [10]),
    (10, 32, False, [10]),
    (10, 32, True, []),
    (0, 4, False, []),
])
def test_batch_sizes_and_len(n, batch_size, drop_last, sizes):
    loader = DataLoader(Range(n), batch_size, drop_last=drop_last, seed=0)
    assert len(loader) == len(sizes)
    assert [len(x) for x, _ in loader] == sizes


def test_each_epoch_is_a_permutation_and_reshuffles():
    ds = Range(50)
    loader = DataLoader(ds, 8, seed=1)
    orders = []
    for _ in range(3):
        batches = list(loader)
        xs = np.concatenate([x[:, 0] for x, _ in batches])
        ts = np.concatenate([t for _, t in batches])
        assert sorted(xs.tolist()) == list(range(50))
        assert np.array_equal(ts, ds.label[xs.astype(int)])
        orders.append(xs)
    assert not np.array_equal(orders[0], orders[1])
    assert not np.array_equal(orders[0], np.arange(50))


def test_pairs_stay_together():
    loader = DataLoader(Range(23), 5, seed=0)
    for x, t in loader:
        assert np.array_equal(x[:, 0].astype(int) % 3, t)
        assert x.dtype == np.float32 and t.dtype == np.int64


def test_seed_makes_order_repeatable_and_none_uses_global_rng():
    a = epoch(DataLoader(Range(30), 7, seed=5))
    b = epoch(DataLoader(Range(30), 7, seed=5))
    c = epoch(DataLoader(Range(30), 7, seed=6))
    assert all(np.array_equal(x, y) for (x, _), (y, _) in zip(a, b))
    assert not all(np.array_equal(x, y) for (x, _), (y, _) in zip(a, c))
    np.random.seed(0)
    d = epoch(DataLoader(Range(30), 7))
    np.random.seed(0)
    e = epoch(DataLoader(Range(30), 7))
    assert all(np.array_equal(x, y) for (x, _), (y, _) in zip(d, e))


def test_seeded_order_depends_only_on_seed_and_epoch():
    fresh = DataLoader(Range(30), 7, seed=5)
    epochs = [epoch(fresh) for _ in range(3)]
    assert fresh.epoch == 3
    resumed = DataLoader(Range(30), 7, seed=5)
    resumed.set_epoch(2)  # as after loading a checkpoint saved at the end of epoch 1
    assert resumed.epoch == 2 and resumed.iteration == 0
    for (x, t), (y, u) in zip(epochs[2], epoch(resumed)):
        assert np.array_equal(x, y) and np.array_equal(t, u)
    resumed.set_epoch(0)
    assert all(np.array_equal(x, y) for (x, _), (y, _) in zip(epochs[0], epoch(resumed)))
    for bad in (-1, 1.5, "3", True):
        with pytest.raises(TypeError, match="seed must be a non-negative int"):
            DataLoader(Range(3), 2, seed=bad)


def test_set_epoch_start_batch_resumes_mid_epoch_to_the_same_batches():
    fresh = DataLoader(Range(30), 7, seed=5)
    epochs = [epoch(fresh) for _ in range(3)]
    for e in range(3):
        for k in range(len(fresh) + 1):
            resumed = DataLoader(Range(30), 7, seed=5)
            resumed.set_epoch(e, start_batch=k)
            assert resumed.epoch == e and resumed.iteration == k
            rest = epoch(resumed)  # the for loop starts where set_epoch put it
            assert len(rest) == len(fresh) - k
            for (x, t), (y, u) in zip(epochs[e][k:], rest):
                assert np.array_equal(x, y) and np.array_equal(t, u)
            if e < 2:  # and the next epoch is the next epoch of an uninterrupted run
                assert resumed.epoch == e + 1
                assert all(np.array_equal(x, y)
                           for (x, _), (y, _) in zip(epochs[e + 1], epoch(resumed)))


def test_set_epoch_then_a_new_loop_after_a_break_starts_a_new_epoch():
    loader = DataLoader(Range(30), 7, seed=5)
    loader.set_epoch(1, start_batch=2)
    for _ in loader:
        break  # the loop consumed the placement; the next one starts epoch 2
    assert [x.shape[0] for x, _ in loader] == [7, 7, 7, 7, 2] and loader.epoch == 3


def test_seeded_order_is_drawn_from_seed_and_epoch():
    # The order of a seeded epoch is part of the checkpoint format of ``mibun train``: a
    # checkpoint written before must resume to the same batches, so it must not change.
    loader = DataLoader(Range(50), 50, seed=7)
    for e in range(3):
        x, _ = next(loader)
        want = np.random.default_rng([7, e]).permutation(50)
        assert np.array_equal(x[:, 0], want.astype(np.float32))
        assert next(loader, None) is None


@pytest.mark.parametrize("kw, err, match", [
    ({"epoch": 1.0}, TypeError, "epoch must be an int"),
    ({"epoch": True}, TypeError, "epoch must be an int"),
    ({"epoch": -1}, ValueError, "epoch=-1 is out of range"),
    ({"epoch": 0, "start_batch": "1"}, TypeError, "start_batch must be an int"),
    ({"epoch": 0, "start_batch": -1}, ValueError, r"start_batch=-1 is out of range \(0..5\)"),
    ({"epoch": 0, "start_batch": 6}, ValueError, "start_batch=6 is out of range"),
])
def test_set_epoch_checks_its_arguments(kw, err, match):
    with pytest.raises(err, match="DataLoader.set_epoch: " + match):
        DataLoader(Range(30), 7, seed=5).set_epoch(**kw)


def test_no_shuffle_is_in_order():
    xs = np.concatenate([x[:, 0] for x, _ in DataLoader(Range(11), 4, shuffle=False)])
    assert xs.tolist() == list(range(11))


def test_dezero_protocol_next_reset_and_break():
    loader = DataLoader(Range(10), 4, shuffle=False)
    x, t = loader.next()
    assert x[:, 0].tolist() == [0, 1, 2, 3] and t.tolist() == [0, 1, 2, 0]
    assert loader.iteration == 1
    x, _ = next(loader)
    assert x[:, 0].tolist() == [4, 5, 6, 7]
    # a new loop after stopping mid-epoch starts a new epoch
    assert [len(x) for x, _ in loader] == [4, 4, 2]
    for x, _ in loader:
        break
    assert [len(x) for x, _ in loader] == [4, 4, 2]
    loader.next()
    loader.reset()
    assert loader.iteration == 0
    with pytest.raises(StopIteration):
        for _ in range(4):
            next(loader)
    assert loader.iteration == 0  # reset after the epoch ended


def test_transforms_are_applied_per_batch_or_per_example():
    ds = Range(9, transform=transforms.Compose([transforms.Normalize(1.0, 2.0),
                                                transforms.AsType(np.float64)]))
    x, t = next(iter(DataLoader(ds, 9, shuffle=False)))
    assert x.dtype == np.float64
    np.testing.assert_allclose(x[:, 0], (np.arange(9) - 1.0) / 2.0)
    ds2 = Range(9, transform=lambda a: a * 10, target_transform=lambda b: -b)
    x, t = next(iter(DataLoader(ds2, 9, shuffle=False)))
    np.testing.assert_allclose(x[:, 0], np.arange(9) * 10)
    assert t.tolist() == [-(i % 3) for i in range(9)]


def test_subclass_getitem_is_respected():
    class Doubled(Range):  # DeZero-style: augmentation written in __getitem__
        def __getitem__(self, i):
            x, t = super().__getitem__(i)
            return x * 2, t

    x, t = next(iter(DataLoader(Doubled(4), 4, shuffle=False)))
    np.testing.assert_allclose(x[:, 0], [0, 2, 4, 6])
    assert t.tolist() == [0, 1, 2, 0]


def test_plain_sequence_of_pairs():
    data = [(np.array([i, i], np.float32), i % 2) for i in range(5)]
    batches = list(DataLoader(data, 2, shuffle=False))
    assert [x.shape for x, _ in batches] == [(2, 2), (2, 2), (1, 2)]
    assert batches[0][1].tolist() == [0, 1]


def test_unlabelled_dataset_gives_none_labels():
    class X(datasets.Dataset):
        def prepare(self):
            self.data = np.arange(6.0)

    assert all(t is None for _, t in DataLoader(X(), 4))


def test_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(Range(3), 0)
    with pytest.raises(TypeError, match="batch_size"):
        DataLoader(Range(3), 2.5)
    with pytest.raises(ValueError, match="larger than"):
        SeqDataLoader(Range(3), 4)


def test_to_gpu_flag_and_cpu():
    loader = DataLoader(Range(4), 2)
    loader.to_gpu()
    assert loader.gpu
    loader.to_cpu()
    assert not loader.gpu
    x, _ = next(loader)
    assert isinstance(x, np.ndarray)


@pytest.mark.gpu
def test_gpu_batches_are_cupy():
    import cupy
    loader = DataLoader(Range(6), 4, gpu=True)
    x, t = next(loader)
    assert isinstance(x, cupy.ndarray) and isinstance(t, cupy.ndarray)


def test_top_level_exports():
    assert mibun.DataLoader is DataLoader and mibun.SeqDataLoader is SeqDataLoader
    assert mibun.dataloaders.DataLoader is DataLoader


# --- SeqDataLoader ----------------------------------------------------------------------
@pytest.mark.parametrize("n, b", [(999, 30), (10, 3), (12, 4), (5, 5), (7, 1)])
def test_seq_loader_streams_walk_contiguous_segments(n, b):
    loader = SeqDataLoader(Range(n), b)
    jump = n // b
    batches = [x[:, 0].astype(int) for x, _ in loader]
    assert len(batches) == len(loader) == jump
    steps = np.stack(batches)  # (time, stream)
    for k in range(b):  # stream k walks its own segment in order, once
        assert steps[:, k].tolist() == list(range(k * jump, (k + 1) * jump))
    assert len(set(steps.ravel().tolist())) == b * jump  # no step repeated
    again = [x[:, 0].astype(int) for x, _ in loader]  # next epoch: same order
    assert all(np.array_equal(u, v) for u, v in zip(batches, again))


def test_seq_loader_on_sin_curve():
    ds = datasets.SinCurve()
    x, t = next(SeqDataLoader(ds, 3))
    assert x.shape == (3, 1) and t.shape == (3, 1)
    assert np.array_equal(x[:, 0], ds.data[[0, 333, 666], 0])


def test_dezero_training_loop_runs_unchanged():
    # Chapter 5's loop: Spiral + DataLoader + MLP + SGD, written against `dezero`.
    import mibun as dezero
    import mibun.functions as F
    from mibun import optimizers
    from mibun.models import MLP
    np.random.seed(0)
    train_set = dezero.datasets.Spiral(train=True)
    train_loader = DataLoader(train_set, 30)
    model = MLP((10, 3))
    optimizer = optimizers.SGD(1.0).setup(model)
    losses = []
    for _ in range(30):
        sum_loss = 0
        for x, t in train_loader:
            y = model(x)
            loss = F.softmax_cross_entropy(y, t)
            model.cleargrads()
            loss.backward()
            optimizer.update()
            sum_loss += float(loss.data) * len(t)
        losses.append(sum_loss / len(train_set))
    assert losses[-1] < 0.85 * losses[0]


@pytest.mark.parametrize("dataset", [None, 3, object()])
def test_dataloader_names_a_dataset_that_is_not_one(dataset):
    # issue 9: it was a raw "object of type 'NoneType' has no len()"
    with pytest.raises(TypeError, match="DataLoader: dataset must be a Dataset or a sequence"):
        DataLoader(dataset, 4)
