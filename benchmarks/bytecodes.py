"""The per-op cost of benchmarks/overhead.py's chain as a count, not a time: the Python
bytecodes that mibun and the floor of its design (benchmarks/_floor_engine.py) execute per
op, forward and backward, by function, and for mibun's two engine loops line by line.

A count does not drift with the machine's speed (the timed ratios swing by 10-20%), and a
line's count is what removing the line would save, so this is the profile of where the
engine's time goes (at roughly 10 ns per bytecode here, beside about 0.5 us of NumPy per
op that both engines pay).

Run:  python benchmarks/bytecodes.py [--lines]
"""
import argparse
import collections
import linecache
import os
import sys

import _floor_engine as floor  # benchmarks/ (this folder is on sys.path)
import numpy as np
import overhead  # the chain itself: benchmarks/overhead.py

import mibun
import mibun.functions as F
from mibun import core


def count(build, backward, per_line=()):
    """Bytecodes executed by ``build()`` and by ``backward(y)``, keyed by (phase, function)
    and, for the code objects in ``per_line``, by (function, line)."""
    funcs, lines = collections.Counter(), collections.Counter()
    phase = "forward"
    here = os.path.abspath(__file__)
    loops = (overhead.chain.__code__, overhead.floor_chain.__code__)

    def trace(frame, event, arg):
        code = frame.f_code
        if code.co_filename == here or code in loops:
            return None  # the benchmark's own loops (what they call is counted)
        frame.f_trace_opcodes = True
        if event == "opcode":
            funcs[phase, f"{os.path.basename(code.co_filename)}:{code.co_name}"] += 1
            if code in per_line:
                lines[code, frame.f_lineno] += 1
        return trace

    sys.settrace(trace)
    try:
        y = build()
        phase = "backward"
        backward(y)
    finally:
        sys.settrace(None)
    return funcs, lines


def report(name, funcs, n_ops):
    total = collections.Counter()
    for (phase, _), k in funcs.items():
        total[phase] += k
    print(f"{name}: {(total['forward'] + total['backward']) / n_ops:.0f} bytecodes per op "
          f"(forward {total['forward'] / n_ops:.0f}, backward {total['backward'] / n_ops:.0f})")
    for (phase, fn), k in funcs.most_common():
        if k >= n_ops / 2:
            print(f"  {phase:8s} {fn:40s} {k / n_ops:6.1f}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", action="store_true",
                        help="also the count of every line of Function.__call__ and the "
                             "backward loop")
    args = parser.parse_args()
    n_ops = overhead.N_OPS
    hot = (core.Function.__call__.__code__, core._run_backward.__code__)
    m_funcs, m_lines = count(lambda: overhead.chain(mibun.Variable(np.array(0.5)), F.tanh),
                             lambda y: y.backward(), hot)
    f_funcs, _ = count(lambda: overhead.floor_chain(floor.Var(np.array(0.5))), floor.backward)
    report("mibun", m_funcs, n_ops)
    report("floor", f_funcs, n_ops)
    if args.lines:
        for code in hot:
            print(f"{code.co_name}, per op and line:")
            for (c, line), k in sorted(m_lines.items(), key=lambda kv: kv[0][1] or 0):
                if c is code and k >= n_ops / 10:
                    text = linecache.getline(code.co_filename, line).strip()
                    print(f"  {line:4d} {k / n_ops:5.1f}  {text[:80]}")


if __name__ == "__main__":
    main()
