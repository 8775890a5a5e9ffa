"""The ``mibun`` command: ``mibun train`` (train a model) and ``mibun grad`` (differentiate).

``mibun train`` with no arguments trains an MLP on the bundled 8x8 digits (no download) in
about a second, and writes a checkpoint, a CSV of the metrics and a PNG of the learning
curves to the output directory it names. Ctrl-C stops after the current step and saves a
checkpoint that ``mibun train --resume`` continues from, to the same numbers as a run that
was never stopped. This module parses the arguments and runs the train command;
``mibun.train`` does the training.

``mibun grad "exp(x**2)**2" --at x=0.5`` prints the value, the derivative by backprop and the
central difference beside it; the command is :mod:`mibun.cli.grad`, its safe expression
language (parsed with ``ast``, never given to ``eval``) :mod:`mibun.cli.expr`.

Exit status: 0 done, 1 failed (one line on stderr), 2 bad arguments, 130 interrupted.
"""
from __future__ import annotations

import argparse
import math
import os
import sys

import mibun
from mibun import train
from mibun.cli import expr, grad
from mibun.cli.expr import ExpressionError, UsageError, evaluate, parse_expression
from mibun.cli.grad import _graph_size  # noqa: F401  (tests count graph nodes with it)

__all__ = ["ExpressionError", "UsageError", "evaluate", "main", "parse_expression"]

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


# =============================================================================
# `mibun train` (the training itself is mibun.train)
# =============================================================================
def _number(kind, positive=False, between=None):
    """An argparse type: a finite ``kind`` (int or float), > 0 or in ``between`` if asked."""
    what = "an integer" if kind is int else "a number"

    def parse(s):
        try:
            v = kind(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {s!r}") from None
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {s}")
        if positive and not v > 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {s}")
        if between and not between[0] <= v <= between[1]:
            raise argparse.ArgumentTypeError(f"must be between {between[0]} and "
                                             f"{between[1]}, got {s}")
        return v
    parse.__name__ = kind.__name__
    return parse


def _positive(kind):
    return _number(kind, positive=True)


def _train_command(args) -> int:
    if args.distributed and args.comm is None:  # on every rank of mpiexec -n N mibun train
        # imported here: mibun.distributed (mpi4py, an optional dependency) loads only
        # when asked for (tests/test_distributed.py checks that mibun.cli does not load it)
        from mibun import distributed
        return distributed.run_command(_train_command, args)
    if args.resume:
        cfg, done = train.load_config(
            args.resume, epochs=args.epochs, device=args.device, data_dir=args.data_dir,
            dataset=args.dataset, model=args.model, batch_size=args.batch_size, lr=args.lr,
            optimizer=args.optimizer, seed=args.seed, hidden=args.hidden)
        if done >= cfg["epochs"]:
            print(f"nothing to do: {args.resume} already finished {done} epoch(s); pass "
                  f"--epochs N with N > {done} to train further")
            return EXIT_OK
    else:
        cfg = train.make_config(
            dataset=args.dataset, model=args.model, epochs=args.epochs,
            batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer, seed=args.seed,
            hidden=args.hidden, data_dir=args.data_dir, download=not args.no_download,
            device=args.device)
    out_dir = args.out or ((os.path.dirname(args.resume) or ".") if args.resume
                           else train.default_out(cfg))
    if args.comm is not None:  # one directory for all ranks (default_out reads the clock)
        out_dir = args.comm.bcast_obj(out_dir)
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--out {out_dir}: cannot create the directory ({e.strerror})") \
            from None
    progress = sys.stderr.isatty() and not args.no_progress
    result = train.train(cfg, out_dir, resume=args.resume, progress=progress,
                         comm=args.comm)
    return EXIT_OK if result.finished else EXIT_INTERRUPTED


# =============================================================================
# Argument parsing and main
# =============================================================================
class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (no usage dump) and exit status 2."""

    def error(self, message):
        raise UsageError(f"{message} (see {self.prog} --help)", prog=self.prog)


def _parser():
    p = _Parser(prog="mibun", description="mibun (미분): train a model or differentiate an "
                "expression. Run 'mibun train' or 'mibun grad --help'.")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="command", parser_class=_Parser, metavar="{train,grad}")

    t = sub.add_parser("train", help="train a model (default: an MLP on the bundled digits)",
                       description="Train a model and write a checkpoint, metrics.csv and "
                       "curves.png to an output directory. Ctrl-C stops after the current "
                       "step and saves a checkpoint that --resume continues from.")
    t.add_argument("--dataset", choices=list(train.DATASETS),
                   help="digits (default, bundled), spiral, sincurve, or mnist, "
                        "fashion-mnist, cifar10 from --data-dir or the cache")
    t.add_argument("--model", choices=["mlp", "cnn", "lstm"],
                   help="mlp (default), cnn (images), lstm (sincurve; images row by row)")
    t.add_argument("--epochs", type=_positive(int), help="number of epochs")
    t.add_argument("--batch-size", type=_positive(int), help="examples per step")
    t.add_argument("--lr", type=_positive(float), help="learning rate")
    t.add_argument("--optimizer", choices=list(train.OPTIMIZERS), help="default: adam")
    t.add_argument("--hidden", type=_positive(int), help="hidden units (mlp, lstm)")
    t.add_argument("--seed", type=_number(int, between=(0, 2**32 - 1)),
                   help="random seed, 0 to 2**32-1 (default 0): same seed, same numbers")
    t.add_argument("--out", help="output directory (default ./mibun-out/<run name>)")
    t.add_argument("--resume", metavar="CHECKPOINT",
                   help="continue the run saved in CHECKPOINT (its settings are reused)")
    t.add_argument("--device", choices=["cpu", "gpu"], default="cpu",
                   help="gpu needs CuPy and a CUDA GPU")
    t.add_argument("--data-dir", help="directory holding the MNIST / CIFAR-10 files")
    t.add_argument("--no-download", action="store_true",
                   help="never download a missing data set")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--distributed", action="store_true",
                   help="data-parallel over MPI: mpiexec -n N mibun train --distributed "
                        "(needs mpi4py: pip install 'mibun[mpi]')")
    t.set_defaults(comm=None)

    g = sub.add_parser("grad", help="differentiate an expression, e.g. "
                       "mibun grad 'exp(x**2)**2' --at x=0.5",
                       description="Print an expression's value and derivatives by backprop, "
                       "beside central differences. Functions: "
                       + ", ".join(sorted(expr.FUNCTIONS)) + " (those mibun provides); "
                       "constants pi, e; operators + - * / **.")
    g.add_argument("expression", help="e.g. 'exp(x**2)**2' or 'x*y + sin(x)'")
    g.add_argument("--at", action="append", metavar="X=V[,Y=W]",
                   help="the point, e.g. x=0.5 or x=1,y=2 (values may use pi, e)")
    g.add_argument("--order", type=int, default=1, help="derivatives up to this order")
    g.add_argument("--hessian", action="store_true", help="print the Hessian")
    g.add_argument("--eps", type=float, default=1e-4, help="central-difference step")
    g.add_argument("--graph", metavar="FILE",
                   help="draw the graph to FILE (.dot, .svg, .png, .pdf); with --order N > 1 "
                        "the graph of the N-th derivative")
    g.add_argument("--trace", action="store_true",
                   help="print each step of the backward pass")
    return p


def _dash_expression(argv):
    """Let ``mibun grad "-x**2"`` work: argparse takes any word starting with ``-`` for an
    option, but one containing a space for a value, so such a word gets a leading space
    (``parse_expression`` strips it). ``grad`` has no short options besides ``-h``."""
    argv = list(argv)
    if argv[:1] != ["grad"]:
        return argv
    return [a if not a.startswith("-") or a.startswith("--") or a == "-h" else " " + a
            for a in argv]


def _one_line(text):
    """A multi-line message on one line: ``a:\n  b\n  c\nd`` -> ``a: b; c; d``."""
    parts = [p.strip() for p in text.splitlines() if p.strip()]
    out = ""
    for p in parts:
        out += p if not out else (" " if out.endswith((":", ",", ";")) else "; ") + p
    return " ".join(out.split())


def main(argv=None) -> int:
    """Run the ``mibun`` command; return the exit status (0, 1, 2 or 130)."""
    parser = _parser()
    args = None
    try:
        args = parser.parse_args(_dash_expression(sys.argv[1:] if argv is None else argv))
        if args.version:
            print(f"mibun {mibun.__version__}")
            return EXIT_OK
        if args.command is None:
            parser.print_help()
            return EXIT_OK
        if args.command == "grad":
            grad.command(args)
            code = EXIT_OK
        else:
            code = _train_command(args)
        sys.stdout.flush()  # a closed pipe (`mibun ... | head`) fails here, caught below
        return code
    except (UsageError, train.ConfigError) as e:
        cmd = getattr(args, "command", None)
        prog = getattr(e, "prog", None) or f"mibun{' ' + cmd if cmd else ''}"
        print(f"{prog}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("mibun: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `mibun ... | head`: the reader left; stop without a message
        try:  # and keep Python's final flush of stdout from failing again at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_FAIL
    except Exception as e:  # one line for the user; MIBUN_DEBUG=1 shows the traceback
        if os.environ.get("MIBUN_DEBUG"):
            raise
        msg = _one_line(str(e)) or type(e).__name__
        name = getattr(args, "command", None)
        print(f"mibun{' ' + name if name else ''}: error: {msg}", file=sys.stderr)
        if not isinstance(e, (OSError, ValueError, RuntimeError)):
            print("(an unexpected error: run with MIBUN_DEBUG=1 for the traceback)",
                  file=sys.stderr)
        return EXIT_FAIL
