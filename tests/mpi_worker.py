"""What the ranks of tests/test_distributed.py run: ``mpiexec -n N python mpi_worker.py MODE``.

MODE ``check METHOD [MACHINES]``: the collectives, and the equivalence of N ranks with batch
b to one process with batch N*b (rank 0 trains the one-process reference beside the ranks
and compares every step), the gradients summed by METHOD (``Communicator.host_method``);
MACHINES > 1 splits the ranks as if on that many machines. ``loop DIR``: reduce a model's
gradients forever, each rank writing its pid to DIR (the kill -9 test).
``raise STEP``: rank 1 raises at that step (the exception test). Any failed check raises,
and the hook of create_communicator ends every rank with a non-zero status.
"""
import os
import sys
import time

import numpy as np


def build(seed, dtype):
    import mibun.functions as F
    import mibun.layers as L
    from mibun import models

    class Net(models.Model):
        def __init__(self):
            super().__init__()
            self.l1 = L.Linear(300, dtype=dtype)
            self.l2 = L.Linear(300, dtype=dtype)
            self.l3 = L.Linear(10, dtype=dtype)
            self.unused = L.Linear(3, in_size=2, dtype=dtype)  # never gets a gradient

        def forward(self, x):
            return self.l3(F.tanh(self.l2(F.tanh(self.l1(x)))))

    np.random.seed(seed)
    model = Net()
    with __import__("mibun").no_grad():
        model(np.zeros((1, 20), dtype))
    return model


def make_optimizer(model, kind):
    from mibun import optimizers as O
    if kind == "momentum":
        opt = O.MomentumSGD(lr=0.1).setup(model)
        opt.add_hook(O.WeightDecay(1e-3))
        opt.add_hook(O.ClipGrad(1.0))  # the global norm of the averaged gradient
    else:
        opt = O.Adam(0.01).setup(model)
    return opt


def max_rel(a, b):
    return float(np.max(np.abs(a - b) / (1e-3 + np.abs(b))))


def check(comm, method):
    import mibun.functions as F
    from mibun import autograd
    from mibun import distributed as D
    from mibun.distributed import communicator

    r, n = comm.rank, comm.size
    assert comm.host_method == method, (comm.host_method, method)
    # --- collectives for metrics and objects
    assert comm.allreduce(float(r + 1)) == n * (n + 1) / 2
    v = comm.allreduce(np.array([r, 1], np.int64), op="max")
    assert v.tolist() == [n - 1, 1] and v.dtype == np.int64
    assert comm.allreduce(np.float32(r), op="mean") == (n - 1) / 2
    assert comm.allreduce_obj([r]) == list(range(n))
    assert comm.bcast_obj({"r": r}) == {"r": 0}
    try:
        comm.allreduce(1.0, op="prod")
        raise AssertionError("op='prod' accepted")
    except ValueError as e:
        assert "op must be one of" in str(e)

    # --- scatter_dataset: equal shards covering every example
    data = [(np.float32(i), i) for i in range(11)]
    shard = D.scatter_dataset(data, comm, shuffle=True, seed=3)
    every = comm.allreduce_obj(list(shard.indices))
    assert len(shard) == -(-11 // n) and sorted(set(every)) == list(range(11))
    _, t = shard.get_batch(np.arange(len(shard)))
    assert t.tolist() == shard.indices.tolist()

    # --- bcast_data: every rank gets rank 0's parameters
    m = build(seed=r, dtype=np.float32)  # different on each rank ...
    comm.bcast_data(m)
    ref = build(seed=0, dtype=np.float32)  # ... until rank 0's are broadcast
    for (name, p), (_, q) in zip(m.named_params(), ref.named_params()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)

    # --- N ranks x batch b == one process x batch N*b, step by step
    b, steps = 8, 12
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n * b * (steps + 1), 20))
    T = rng.integers(0, 10, n * b * (steps + 1))
    report = []
    # Adam in float32 is left out: its first steps are lr * g / (|g| + eps), so an entry
    # whose gradient is near 1e-8 moves by up to lr on a change of summation order alone
    # (one process summing its batch in another order does the same).
    for dtype, gtol, tol in ((np.float32, 1e-5, {"momentum": 5e-5}),
                             (np.float64, 1e-11, {"momentum": 1e-12, "adam": 1e-9})):
        for kind in tol:
            model, single = build(1, dtype), build(1, dtype)
            opt = D.create_multi_node_optimizer(make_optimizer(model, kind), comm)
            assert type(opt).__name__ == type(make_optimizer(single, kind)).__name__
            ref_opt = make_optimizer(single, kind)
            comm.bcast_data(model)
            worst = worst_g = 0.0
            for k in range(steps):
                rows = np.arange(k * n * b, (k + 1) * n * b)  # the step's examples, in order
                mine = rows[r * b:(r + 1) * b]  # this rank's contiguous part
                loss = F.softmax_cross_entropy(model(X[mine].astype(dtype)), T[mine])
                model.cleargrads()
                loss.backward()
                if k:  # from the second step, backward writes the weights into the arena
                    assert all(lay.W.grad.data is autograd.arena_slot(lay.W)
                               for lay in (model.l1, model.l2, model.l3)), k
                opt.update()
                loss1 = F.softmax_cross_entropy(single(X[rows].astype(dtype)), T[rows])
                single.cleargrads()
                loss1.backward()
                ref_opt.update()
                for (name, p), (_, q) in zip(model.named_params(), single.named_params()):
                    assert p.data.dtype == dtype
                    if name.startswith("unused"):
                        assert p.grad is None  # no rank had a gradient: still None
                        continue
                    assert p.grad.data.dtype == dtype
                    # the averaged gradient: normwise, as float summation order allows
                    eg = float(np.max(np.abs(p.grad.data - q.grad.data))
                               / np.max(np.abs(q.grad.data)))
                    e = max_rel(p.data, q.data)
                    worst, worst_g = max(worst, e), max(worst_g, eg)
                    assert eg <= gtol and e <= tol[kind], (dtype.__name__, kind, k, name, eg, e)
                    # the ranks hold bit-identical parameters
                    hi = comm.allreduce(p.data, op="max")
                    lo = comm.allreduce(p.data, op="min")
                    assert np.array_equal(hi, lo), (kind, k, name)
            # every rank's optimizer state is the whole of it (on one machine the ranks
            # share one copy, each updating its share), as one process's
            mine, ref_state = opt.state_dict(), ref_opt.state_dict()
            assert mine.keys() == ref_state.keys()
            for key, v in ref_state.items():
                e = float(np.max(np.abs(mine[key] - v)) / (1e-30 + np.max(np.abs(v))))
                assert e <= tol[kind], (kind, key, e)
            if comm.host_method != "allreduce":
                assert not model.l1.W.data.flags.writeable  # the machine's one copy
                assert not opt.state["l1/W"]["v" if kind == "momentum" else "m"].flags.writeable
            # resuming from another checkpoint (new arrays for the parameters and the state,
            # adopted by the next update), and bcast_data of the shared copy: the next step
            # is one process's again
            weights = build(5, dtype).state_dict()
            state = {k: v * 0.5 if v.ndim else v for k, v in ref_state.items()}
            for m_, o_ in ((model, opt), (single, ref_opt)):
                m_.load_state_dict(weights)
                o_.load_state_dict(state)
            comm.bcast_data(model)
            rows = np.arange(steps * n * b, (steps + 1) * n * b)  # one step more
            for m_, o_, x_rows in ((model, opt, rows[r * b:(r + 1) * b]), (single, ref_opt, rows)):
                loss = F.softmax_cross_entropy(m_(X[x_rows].astype(dtype)), T[x_rows])
                m_.cleargrads()
                loss.backward()
                o_.update()
            for (name, p), (_, q) in zip(model.named_params(), single.named_params()):
                e = max_rel(p.data, q.data)
                assert e <= tol[kind], ("resumed", dtype.__name__, kind, name, e)
                assert np.array_equal(comm.allreduce(p.data, op="max"),
                                      comm.allreduce(p.data, op="min")), name
            report.append(f"{np.dtype(dtype).name} {kind}: gradients {worst_g:.2g} "
                          f"(tolerance {gtol:g}), parameters {worst:.2g} ({tol[kind]:g})")

    # --- a rank without a gradient (no examples) still takes part in the reduction
    model = build(1, np.float32)
    opt = D.create_multi_node_optimizer(make_optimizer(model, "momentum"), comm)
    model.cleargrads()
    if r == 0:
        F.sum(model(np.ones((2, 20), np.float32))).backward()
    grad0 = comm.bcast_obj(model.l1.W.grad.data if r == 0 else None)
    comm.allreduce_grad(model)
    np.testing.assert_allclose(model.l1.W.grad.data, grad0 / n, rtol=1e-6)
    # --- weight 1.0 sums: a loss weighted by 1/n before backward gives the mean, as
    # mibun train --distributed does (no scaling pass); each rank has its own data here
    rng = np.random.default_rng(100 + r)
    x, t = rng.standard_normal((4, 20)), rng.integers(0, 10, 4)
    pre, post = build(1, np.float64), build(1, np.float64)
    for m_, scale, weight in ((pre, 1 / n, 1.0), (post, 1.0, None)):
        m_.cleargrads()
        (F.softmax_cross_entropy(m_(x), t) * scale).backward()
        comm.allreduce_grad(m_, weight)
    for (name, p), (_, q) in zip(pre.named_params(), post.named_params()):
        if not name.startswith("unused"):
            # normwise (1e-13 of the largest entry): for N not a power of two, scaling the
            # loss and scaling the gradients round differently, near zero entries too
            np.testing.assert_allclose(p.grad.data, q.grad.data, rtol=1e-13,
                                       atol=1e-13 * np.abs(q.grad.data).max(), err_msg=name)
    # --- gradients not ours to reduce in place: one array given to two parameters (as
    # backprop may), a transposed view, a read-only broadcast. Every rank has the same
    # gradients here, so each mean must be the gradient itself.
    import mibun
    import mibun.layers as L

    class Big(L.Layer):
        def __init__(self):
            super().__init__()
            for name in "ABCD":
                setattr(self, name, mibun.Parameter(np.ones((300, 300), np.float32)))

    big = Big()
    shared = np.arange(9e4, dtype=np.float32).reshape(300, 300) / 9e4
    big.A.grad = mibun.Variable(shared)
    big.B.grad = big.A.grad
    big.C.grad = mibun.Variable(np.ascontiguousarray(shared.T).T)
    big.D.grad = mibun.Variable(np.broadcast_to(shared[0], (300, 300)))
    want = {n: np.array(p.grad.data) for n, p in big.named_params()}
    comm.allreduce_grad(big)
    for n, p in big.named_params():
        np.testing.assert_allclose(p.grad.data, want[n], rtol=1e-6, err_msg=n)
    assert not np.shares_memory(big.A.grad.data, big.B.grad.data)
    if comm.host_method != "allreduce":  # (one Allreduce of unequal sizes: MPI's behaviour)
        odd = L.Linear(3 + r, in_size=2)  # a model of another size on each rank
        try:
            comm.allreduce_grad(odd)
            raise AssertionError("models of different sizes accepted")
        except ValueError as e:
            assert "the ranks' models differ" in str(e), e
    # --- more models than a communicator keeps arenas for: the oldest's is dropped (a
    # shared one's window freed), its gradients copied out first, never left a view of it
    def reduced(seed):
        m_ = build(seed, np.float32)
        m_.cleargrads()
        F.sum(m_(np.ones((2, 20), np.float32))).backward()
        comm.allreduce_grad(m_)
        return m_
    first = reduced(2)
    g = first.l1.W.grad.data.copy()
    for k in range(communicator.ARENAS_KEPT):
        reduced(3 + k)
    assert autograd.arena_slot(first.l1.W) is None
    np.testing.assert_array_equal(first.l1.W.grad.data, g)
    assert first.l1.W.grad.data.flags.writeable  # its own copy now
    comm.allreduce_grad(first)  # a new arena
    W = first.l1.W
    if comm.host_method == "allreduce":  # reduced in place: the gradient is the slot
        assert autograd.arena_slot(W) is W.grad.data
    else:  # a read-only view of the machine's sum, not of this rank's arena
        assert autograd.arena_slot(W) is not None and not W.grad.data.flags.writeable
        assert not np.shares_memory(autograd.arena_slot(W), W.grad.data)
        try:
            W.grad.data *= 2
            raise AssertionError("the shared sum was written in place")
        except ValueError as e:
            assert "read-only" in str(e), e
    np.testing.assert_allclose(W.grad.data, g, rtol=1e-6)
    # --- a model of a multi-node optimizer dropped so: on one machine its parameters and
    # state were the ranks' shared copy; they get arrays of their own, and training goes on
    # as for its twin, never dropped
    pair = []
    for _ in range(2):
        m_ = build(2, np.float32)
        pair.append((m_, D.create_multi_node_optimizer(make_optimizer(m_, "momentum"), comm)))

    def train(m_, o_):
        m_.cleargrads()
        F.sum(m_(np.ones((2, 20), np.float32))).backward()
        o_.update()
    for _ in range(2):
        for m_, o_ in pair:
            train(m_, o_)
    (m_, o_), (twin, _) = pair
    before = m_.l1.W.data.copy(), o_.state["l1/W"]["v"].copy()
    kept = m_.l1.W.data, o_.state["l1/W"]["v"]  # references held elsewhere (a checkpoint's)
    for k in range(communicator.ARENAS_KEPT):
        reduced(20 + k)
    after = m_.l1.W.data, o_.state["l1/W"]["v"]
    assert all(a.flags.writeable for a in after)
    for a, b_, c in zip(after, before, kept):
        np.testing.assert_array_equal(a, b_)
        np.testing.assert_array_equal(c, b_)  # its shared memory is never given back
    for m2, o2 in pair:
        train(m2, o2)  # a new arena (and shared copy) for the dropped one
    for (name, p), (_, q) in zip(m_.named_params(), twin.named_params()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)
    from mibun import optimizers as O
    if comm.host_method != "allreduce":  # a plain optimizer on the shared copy: a clear error
        try:
            train(twin, O.SGD(0.1).setup(twin))
            raise AssertionError("a read-only shared parameter was updated")
        except ValueError as e:
            assert "is read-only" in str(e) and "p.data = p.data.copy()" in str(e), e
    # --- one process's results whatever the model: two parameters on one array (tied, so
    # never put in shares), and a hook on rank 0 only (a logger)
    class Tied(L.Layer):
        def __init__(self, seed):
            super().__init__()
            self.W = mibun.Parameter(np.random.default_rng(seed).standard_normal((6, 6)))
            self.T = mibun.Parameter(self.W.data.T)

        def forward(self, x):
            return F.tanh(F.matmul(F.tanh(F.matmul(x, self.W)), self.T))
    seen = []
    for model_of, width in ((lambda: Tied(9), 6), (lambda: build(9, np.float64), 20)):
        model, single = model_of(), model_of()
        opt = D.create_multi_node_optimizer(O.Adam(0.01).setup(model), comm)
        ref_opt = O.Adam(0.01).setup(single)
        if r == 0:
            opt.add_hook(lambda ps: seen.append(len(ps)))
        xin = np.random.default_rng(4).standard_normal((2 * comm.size, width))
        for _ in range(3):
            for m2, o2, rows in ((model, opt, xin[2 * r:2 * r + 2]), (single, ref_opt, xin)):
                m2.cleargrads()
                (F.sum(m2(rows) ** 2) * (1 / len(rows))).backward()
                o2.update()
        for (name, p), (_, q) in zip(model.named_params(), single.named_params()):
            np.testing.assert_allclose(p.data, q.data, rtol=1e-12, atol=1e-12, err_msg=name)
        if width == 6:
            assert np.shares_memory(model.W.data, model.T.data)  # still tied
    assert len(seen) == (6 if r == 0 else 0)
    if r == 0:
        print("\n".join(report), flush=True)
        print("check: ok", flush=True)


def main():
    from mibun import distributed as D
    comm = D.create_communicator()
    mode = sys.argv[1]
    if mode == "check":
        machines = int(sys.argv[3]) if len(sys.argv) > 3 else 1
        if machines > 1:  # consecutive ranks on each "machine"
            from mibun.distributed.shared import _NodeReducer
            node = comm.mpi_comm.Split(comm.rank * machines // comm.size, comm.rank)
            comm._host = _NodeReducer(comm, node)
        check(comm, sys.argv[2])
    elif mode == "loop":
        import mibun.functions as F
        with open(os.path.join(sys.argv[2], f"rank{comm.rank}.pid"), "w") as fh:
            fh.write(str(os.getpid()))
        model = build(0, np.float32)
        while True:
            model.cleargrads()
            F.sum(model(np.ones((2, 20), np.float32))).backward()
            comm.allreduce_grad(model)
            time.sleep(0.01)
    elif mode == "raise":
        for step in range(1000):
            comm.allreduce(1.0)
            if comm.rank == 1 and step == int(sys.argv[2]):
                raise ValueError(f"a bad batch at step {step}")
            time.sleep(0.005)


if __name__ == "__main__":
    main()
