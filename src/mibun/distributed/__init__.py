"""Data-parallel training over MPI (through ``mpi4py``), with ChainerMN's names.

Every process (a *rank*) holds the whole model and trains on its own share of each batch;
after backward the ranks average their gradients, so every rank takes the same step::

    comm = mibun.distributed.create_communicator()       # over MPI.COMM_WORLD
    train = mibun.distributed.scatter_dataset(Digits(), comm, shuffle=True)
    model = MLP((100, 10)); model(x0)                     # create the lazy parameters
    comm.bcast_data(model)                                # everyone starts from rank 0's
    opt = mibun.distributed.create_multi_node_optimizer(Adam().setup(model), comm)
    for x, t in DataLoader(train, 32, seed=0):            # 32 examples per rank and step
        loss = F.softmax_cross_entropy(model(x), t)
        model.cleargrads(); loss.backward(); opt.update()  # allreduce, then step

Run it with ``mpiexec -n 4 python train.py``; ``mpiexec -n 4 mibun train --distributed``
does the same for the ``mibun train`` command (``run_command``, ``DataParallelTrainer``).

* ``import mibun`` never needs MPI: this module is imported only when used, and says what to
  install when ``mpi4py`` is missing.
* Gradients are summed per backend and dtype, in place, over a *gradient arena* (one flat
  buffer with a slot per parameter) that backward writes ``Linear``'s gradients into
  directly: on one machine in shared memory, each rank summing its share of all the
  ranks' arenas into one shared sum (``shared``), else by one MPI ``Allreduce``
  (``Communicator.allreduce_grad``). On such a machine the multi-node optimizer keeps one
  copy of the parameters and its state there too, each rank updating its share
  (``sharded``); those arrays are read-only: replace them rather than write in place.
* A rank that fails stops every rank (``MPI_Abort``) after printing which rank failed: an
  uncaught exception in a script (``create_communicator`` installs the hook) or any error
  in ``mibun train --distributed``. A rank killed outright is noticed by ``mpiexec``, which
  ends the others and names the rank.
* CuPy gradients are reduced on the GPU: by a CUDA-aware MPI if the library says it is one,
  else with NCCL through ``cupy.cuda.nccl``, else staged through host memory
  (``Communicator.gpu_method`` says which; ``MIBUN_GPU_REDUCE`` forces one). That code path
  has not been run on a GPU yet.

One module per job: ``communicator`` (``Communicator``), ``shared`` (its shared-memory
sum), ``gpu`` (its CuPy collectives), ``multi_node`` (the optimizer and the dataset's
shards), ``sharded`` (the optimizer's step in shares of one shared copy),
``trainer`` (``mibun train --distributed``).
"""
from mibun.distributed.communicator import INSTALL, Communicator, create_communicator  # noqa: F401
from mibun.distributed.multi_node import create_multi_node_optimizer, scatter_dataset
from mibun.distributed.trainer import DataParallelTrainer, _split_bounds, run_command  # noqa: F401

__all__ = ["Communicator", "DataParallelTrainer", "create_communicator",
           "create_multi_node_optimizer", "run_command", "scatter_dataset"]
