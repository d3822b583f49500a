"""The Jinja sandbox marketer templates run in, with a bound on the work a render may do.

Jinja's `SandboxedEnvironment` keeps a template away from Python internals; it does not stop a
template from spinning (two nested `range(100000)` loops) or from building a huge string. Here:

- Every `{% for %}` loop's iterable is wrapped when the template is compiled, so each round
  counts; every call (functions, methods, macros) counts too. A render may take `MAX_STEPS`
  rounds and calls and `MAX_SECONDS` of the rendering thread's own CPU time (checked as it
  counts; a busy machine, a wait on the database or a garbage-collector pause is not the
  template's work). Over either
  it stops with `TooMuchWork`.
- Sizes: `*`, `+`, `~`, `%`, the filters and str methods that can multiply a string (`center`,
  `replace`, `join`, `format`, `indent`, `batch`…) refuse a result over `MAX_OUTPUT` characters
  before building it, and every filter's and `~`'s result is checked after (the compiled
  code calls `environment.sized` around them).
- Recursion deeper than Python allows is refused as "too deep".

`bounded(budget)` is the context in which a render runs; outside one (a compile, a syntax
check) nothing is counted.
"""

from __future__ import annotations

import contextvars
import gc
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment
from jinja2.visitor import NodeTransformer

MAX_OUTPUT = 1_000_000  # characters a template may produce (an email is far smaller)
MAX_STEPS = 100_000  # loop rounds and calls in one render
MAX_SECONDS = 2.0  # CPU time of one render (its thread's, so a busy machine does not count)


class TooMuchWork(SecurityError):
    """The template went over its budget; the message says which and what to do."""


_collecting = threading.local()  # this thread's CPU time in the garbage collector


def _count_collections(phase: str, _info: dict[str, Any]) -> None:
    if phase == "start":
        _collecting.started = time.thread_time()
    elif getattr(_collecting, "started", None) is not None:
        _collecting.total = (getattr(_collecting, "total", 0.0) + time.thread_time()
                             - _collecting.started)
        _collecting.started = None


gc.callbacks.append(_count_collections)


def _work_time() -> float:
    """This thread's CPU time, less its pauses in the garbage collector (a full collection of
    a large heap is the process's work, not the template's)."""
    return time.thread_time() - getattr(_collecting, "total", 0.0)


class Budget:
    def __init__(self, steps: int = MAX_STEPS, seconds: float = MAX_SECONDS) -> None:
        self.left, self.steps, self.seconds = steps, steps, seconds
        self.deadline = _work_time() + seconds

    def spend(self, n: int = 1) -> None:
        self.left -= n
        if self.left < 0:
            raise TooMuchWork(f"the template does too much work (more than {self.steps:,} "
                              "loop rounds and calls): use fewer or shorter loops")
        if _work_time() > self.deadline:
            raise TooMuchWork(f"the template does too much work (it ran over "
                              f"{self.seconds:g} seconds): use fewer or shorter loops")


_budget: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("template_budget",
                                                                         default=None)


@contextmanager
def bounded(budget: Budget | None = None) -> Iterator[Budget]:
    """Count the work of what runs inside (one render)."""
    budget = budget or Budget()
    token = _budget.set(budget)
    try:
        yield budget
    finally:
        _budget.reset(token)


def _spend(n: int = 1) -> None:
    budget = _budget.get()
    if budget is not None:
        budget.spend(n)


def too_long(size: int) -> None:
    if size > MAX_OUTPUT:
        raise SecurityError(f"that would make a text too long for an email (over "
                            f"{MAX_OUTPUT:,} characters)")


def _length(value: Any) -> int:
    return len(value) if isinstance(value, (str, list, tuple)) else 0


_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\d*)(?:\.(\d+))?")
_BRACE_SPEC = re.compile(r"\{[^{}]*?:([^{}]*)\}")
_NUMBER = re.compile(r"\d+")


def check_format(template: Any) -> None:
    """Refuse `%`- and `{}`-format widths or precisions over MAX_OUTPUT."""
    if not isinstance(template, str):
        return
    numbers = [n for m in _PERCENT_SPEC.finditer(template) for n in m.groups() if n]
    numbers += [n for m in _BRACE_SPEC.finditer(template) for n in _NUMBER.findall(m.group(1))]
    for number in numbers:
        too_long(int(number))


def _check_ints(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_OUTPUT:
            raise SecurityError(f"{value:,} is too large a number here (at most "
                                f"{MAX_OUTPUT:,} in an email template)")


def _replaced_size(text: str, old: Any, new: Any, count: Any = -1) -> int:
    old, new = str(old), str(new)
    hits = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    return len(text) + hits * (len(new) - len(old))


def _joined_size(parts: list[Any], separator: Any) -> int:
    return sum(len(str(p)) for p in parts) + max(len(parts) - 1, 0) * len(str(separator))


MULTIPLYING_FILTERS = frozenset({"format", "replace", "indent", "wordwrap", "join", "center",
                                 "batch", "slice"})


def _bounded_filter(name: str, original: Any) -> Any:
    # A filter marked pass_context / pass_eval_context / pass_environment gets that first.
    skip = 1 if hasattr(original, "jinja_pass_arg") else 0

    def checked(*args: Any, **kwargs: Any) -> Any:
        value, rest = (args[skip], args[skip + 1:]) if len(args) > skip else (None, ())
        _check_ints(rest, kwargs)
        if name == "format":
            check_format(value)
        elif name == "replace" and isinstance(value, str) and len(rest) >= 2:
            too_long(_replaced_size(value, *rest[:3]))
        elif name == "indent" and isinstance(value, str):
            width = rest[0] if rest else kwargs.get("width", 4)
            width = len(width) if isinstance(width, str) else int(width or 0)
            too_long(len(value) + (value.count("\n") + 1) * width)
        elif name == "wordwrap" and isinstance(value, str):
            width = int(rest[0] if rest else kwargs.get("width", 79)) or 1
            wrap = rest[2] if len(rest) > 2 else kwargs.get("wrapstring") or "\n"
            too_long(len(value) + (len(value) // width + 1) * len(str(wrap)))
        elif name == "join" and len(args) > skip:
            parts = list(value) if value is not None else []
            _spend(len(parts))
            too_long(_joined_size(parts, rest[0] if rest else kwargs.get("d", "")))
            args = (*args[:skip], parts, *args[skip + 1:])
        return _sized(original(*args, **kwargs))

    checked.__dict__.update(getattr(original, "__dict__", {}))  # keeps jinja_pass_arg
    return checked


def _sized(value: Any) -> Any:
    too_long(_length(value))
    return value


_STR_SIZERS = {
    "center": lambda s, a: a[0] if a else 0, "ljust": lambda s, a: a[0] if a else 0,
    "rjust": lambda s, a: a[0] if a else 0, "zfill": lambda s, a: a[0] if a else 0,
    "expandtabs": lambda s, a: len(s) + s.count("\t") * (a[0] if a else 8),
    "replace": lambda s, a: _replaced_size(s, *a[:3]) if len(a) >= 2 else 0,
}


class LoopCounter(NodeTransformer):
    """At compile time: every loop's iterable through `environment.count_rounds`."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Call(nodes.EnvironmentAttribute("count_rounds"), [node.iter], [],
                               None, None, lineno=node.lineno)
        return node


class SizedCodeGenerator(CodeGenerator):
    """Every filter's and `~`'s result goes through `environment.sized` (a direct call in the
    compiled code, not a sandboxed one: it runs for every filter)."""

    def visit_Filter(self, node: nodes.Filter, frame: Frame) -> None:
        if node.node is None:  # {% filter %} blocks and {% set x | f %}: left as they are
            super().visit_Filter(node, frame)
            return
        self.write("environment.sized(")
        super().visit_Filter(node, frame)
        self.write(")")

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.sized(")
        super().visit_Concat(node, frame)
        self.write(")")


class MailSandbox(SandboxedEnvironment):
    """The sandbox, stricter: touching an unsafe attribute (`''.__class__`) is an error at once,
    instead of an empty value that would hide the attempt from `validate`; work is budgeted
    (see the module doc)."""

    # `'x' * 10**9` or `9 ** 9 ** 9` would take the worker's memory or CPU: refuse them.
    intercepted_binops = frozenset(["*", "**", "+", "%"])
    code_generator_class = SizedCodeGenerator

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        # Filters that can multiply their input are checked before they run; every filter's
        # result is checked after (`sized`, at compile time).
        self.filters = {name: _bounded_filter(name, f) if name in MULTIPLYING_FILTERS else f
                        for name, f in self.filters.items()}

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = LoopCounter().visit(super()._parse(source, name, filename))
        tree.set_environment(self)
        return tree

    @staticmethod
    def count_rounds(iterable: Any) -> Iterator[Any]:
        for item in iterable:
            _spend()
            yield item

    @staticmethod
    def sized(value: Any) -> Any:
        return _sized(value)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} "
                            "object is not allowed in an email template")

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        _spend()
        owner = getattr(obj, "__self__", None)
        if isinstance(owner, str):
            method = getattr(obj, "__name__", "")
            if method in ("format", "format_map"):
                check_format(owner)
            elif method == "join" and args:
                parts = list(args[0])
                _spend(len(parts))
                too_long(_joined_size(parts, owner))
                args = (parts, *args[1:])
            elif method in _STR_SIZERS:
                _check_ints(args, kwargs)
                too_long(int(_STR_SIZERS[method](owner, args) or 0))
        elif obj is self.globals.get("lipsum"):
            _check_ints(args, kwargs)
        return _sized(super().call(context, obj, *args, **kwargs))

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            if not isinstance(right, (int, float)) or abs(right) > 100:
                raise SecurityError("exponents above 100 are not allowed in an email template")
        elif operator == "*":
            for sized, times in ((left, right), (right, left)):
                if isinstance(sized, (str, list, tuple)) and isinstance(times, int):
                    too_long(len(sized) * times)
        elif operator == "+":
            too_long(_length(left) + _length(right))
        elif operator == "%":
            check_format(left)
        return _sized(super().call_binop(context, operator, left, right))
