"""Global switches: grad mode and train/test mode, per thread.

``Config.enable_backprop`` and ``Config.train`` keep DeZero's names, but ``Config`` is a
``threading.local`` object (as in Chainer and PyTorch), so ``no_grad()`` in one thread never
changes another thread. Every mode works as a context manager and as a decorator.
"""
from __future__ import annotations

import functools
import threading


class _Config(threading.local):
    # Class attributes are each thread's defaults.
    enable_backprop = True  # record the graph (off inside no_grad and plain backward)
    train = True  # training behaviour for dropout / batch_norm (off in test_mode)
    # On while the engine runs a backward on arrays (no graph recorded): a mibun op called
    # with arrays only then returns an array (see mibun.core). Only the engine sets it.
    array_backward = False


Config = _Config()


class using_config:
    """Set ``Config.<name> = value`` for the duration of a ``with`` block or a decorated call.

    >>> with using_config('train', False):
    ...     Config.train
    False
    >>> Config.train
    True
    """

    def __init__(self, name: str, value):
        if not hasattr(_Config, name):
            raise AttributeError(f"using_config: unknown setting {name!r}; "
                                 "known: enable_backprop, train, array_backward")
        self.name = name
        self.value = value
        # The values to restore, a stack per thread: one instance can be entered
        # re-entrantly, and by several threads at once (a shared ``no_grad()`` object) with
        # each thread getting back its own mode.
        self._saved = threading.local()

    def __enter__(self):
        saved = self._saved.__dict__.setdefault("stack", [])
        saved.append(getattr(Config, self.name))
        setattr(Config, self.name, self.value)
        return self

    def __exit__(self, *exc):
        setattr(Config, self.name, self._saved.stack.pop())
        return False

    def __call__(self, func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with using_config(self.name, self.value):
                return func(*args, **kwargs)

        return wrapper


def no_grad(func=None):
    """Do not record the graph: ``with no_grad():``, ``@no_grad()`` or ``@no_grad``."""
    mode = using_config("enable_backprop", False)
    return mode(func) if callable(func) else mode


def enable_grad(func=None):
    """Record the graph again inside a ``no_grad`` region."""
    mode = using_config("enable_backprop", True)
    return mode(func) if callable(func) else mode


def test_mode(func=None):
    """Inference behaviour (dropout off, batch_norm uses running statistics)."""
    mode = using_config("train", False)
    return mode(func) if callable(func) else mode


setattr(test_mode, "__test__", False)  # keep pytest from collecting it when imported into a test
