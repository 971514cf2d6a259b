"""One config mechanism for every diffgrn object: a JSON dict and back.

Every configurable class derives from `Configurable`. Its `config()` is
`{"type": NAME, **arguments}`, where `arguments()` are the constructor arguments
(by default read from the `__init__` signature; a class whose constructor takes
what it does not keep overrides `arguments`). `from_config(config)` rebuilds any such object: the
class is found by `type` (diffgrn's own by their short name, anyone else's by
`module:QualName`, with the defining file recorded for a script's `__main__`), nested
configs are rebuilt first, and a constructor that needs a PRNG key gets a fixed one
(array leaves are loaded separately, e.g. by `diffgrn.load`).

A config naming a script's file runs that file to find its class (as importing a
module does): load configs, run folders and saved regulators only from sources you
trust, as with any code.
"""

import functools
import importlib
import importlib.util
import inspect
import math
import sys
from pathlib import Path
from typing import Any

import equinox as eqx
import jax.random as jr
import numpy as np

_REGISTRY: dict[str, type] = {}
_FILES: dict[str, str] = {}  # module name of a script loaded from its file -> file


def type_name(cls: type) -> str:
    """`Chain` for diffgrn's classes, `package.module:Class` for anyone else's (a
    script's classes are `__main__:Class`, also when loaded back from its file)."""
    if cls.__module__.split(".")[0] == "diffgrn":
        return cls.__qualname__
    module = "__main__" if cls.__module__ in _FILES else cls.__module__
    return f"{module}:{cls.__qualname__}"


def _defining_file(cls: type) -> str | None:
    """The file of a script's class (`__main__`, or loaded back from its file)."""
    if cls.__module__ in _FILES:
        return _FILES[cls.__module__]
    if cls.__module__ == "__main__":
        main = getattr(sys.modules["__main__"], "__file__", None)
        return None if main is None else str(Path(main).resolve())
    return None


class Configurable(eqx.Module):
    """Base of every object that describes itself as a JSON config."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _REGISTRY[type_name(cls)] = cls

    def arguments(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this object: each parameter of
        `__init__` held as an attribute of the same name, except array parameters
        that have a default (trainable leaves, loaded separately) and `key`.
        Override when the constructor takes something the object does not keep."""
        out = {}
        for name, p in inspect.signature(type(self)).parameters.items():
            if name == "key" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            if not hasattr(self, name):
                continue
            value = getattr(self, name)
            if p.default is not p.empty and eqx.is_inexact_array(value):
                continue
            out[name] = value
        return out

    def replace(self, **changes):
        """A copy built with some constructor arguments changed."""
        return type(self)(**{**self.arguments(), **changes})

    def config(self) -> dict[str, Any]:
        """`{"type": …, **arguments()}` with nested objects as their configs."""
        out = {"type": type_name(type(self))}
        file = _defining_file(type(self))
        if file is not None:  # a script's class: say where it lives
            out["file"] = file
        for name, value in self.arguments().items():
            out[name] = encode(value, f"{type(self).__name__}.{name}")
        return out

    @classmethod
    def from_config(cls, config: dict):
        """Rebuild an instance of this class (or a subclass) from `config()`."""
        if isinstance(config, dict) and "type" not in config:
            config = {"type": type_name(cls), **config}
        return from_config(config, cls)


def encode(value: Any, where: str = "value") -> Any:
    """A JSON-able form of a constructor argument (configs nest)."""
    if isinstance(value, Configurable):
        return value.config()
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else str(float(value))
    if isinstance(value, (tuple, list)):
        return [encode(v, where) for v in value]
    if isinstance(value, dict):
        return {str(k): encode(v, f"{where}[{k!r}]") for k, v in value.items()}
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return encode(np.asarray(value).tolist(), where)
    raise TypeError(
        f"{where} holds a {type(value).__name__}, which has no JSON config; make it a "
        "diffgrn.config.Configurable or pass a JSON-able value"
    )


def find_class(config: dict) -> type:
    """The class a config names: registered, importable, or defined in its `file`."""
    name = config.get("type")
    if not isinstance(name, str):
        raise ValueError(f"a config needs a 'type' naming its class; got {config!r}")
    if name in _REGISTRY:
        return _REGISTRY[name]
    module, _, qualname = name.rpartition(":")
    if not module:
        raise ValueError(f"unknown diffgrn type {name!r}; known: {', '.join(sorted(known()))}")
    found = None
    try:
        found = _attribute(importlib.import_module(module), qualname)
    except ImportError:
        pass
    if found is None and config.get("file"):  # a script's class: from its file
        found = _attribute(_from_file(config["file"], name), qualname)
    if found is None:
        raise ValueError(
            f"cannot find the class {name!r}: import or define it before loading"
            + (f" (its file {config['file']} did not define it)" if config.get("file") else "")
        )
    return found


def _attribute(module, qualname: str) -> type | None:
    obj = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return obj if isinstance(obj, type) else None


def _from_file(file: str, name: str):
    if not Path(file).is_file():
        raise ValueError(f"cannot find the class {name!r}: its file {file} is missing")
    stem = "_diffgrn_user_" + "".join(c if c.isalnum() else "_" for c in str(file))
    if stem in sys.modules:
        return sys.modules[stem]
    spec = importlib.util.spec_from_file_location(stem, file)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[stem] = mod
    _FILES[stem] = str(Path(file).resolve())
    try:  # `if __name__ == "__main__":` blocks do not run
        spec.loader.exec_module(mod)
    except Exception as e:  # the user's file is broken: say which, as a config error
        sys.modules.pop(stem, None)
        _FILES.pop(stem, None)
        raise ValueError(
            f"cannot load the class {name!r} from {file}: {type(e).__name__}: {e}"
        ) from e
    return mod


def known() -> list[str]:
    return [n for n in _REGISTRY if ":" not in n and not n.startswith("Abstract")]


def decode(value: Any) -> Any:
    """Rebuild nested configs (dicts with a 'type') inside a JSON value."""
    if isinstance(value, dict):
        if "type" in value:
            return from_config(value)
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def from_config(config: dict, base: type | None = None) -> Any:
    """Rebuild an object from its `config()`. With `base`, it must be an instance."""
    if not isinstance(config, dict):
        raise ValueError(f"a config must be a JSON object; got {config!r}")
    cls = find_class(config)
    if base is not None and not issubclass(cls, base):
        raise ValueError(f"{config['type']!r} is not a {base.__name__}")
    kwargs = {k: decode(v) for k, v in config.items() if k not in ("type", "file")}
    if "key" not in kwargs and _needs_key(cls):
        kwargs["key"] = jr.key(0)  # a skeleton: its array leaves are loaded after
    return cls(**kwargs)


def _needs_key(cls) -> bool:
    try:
        p = inspect.signature(cls).parameters.get("key")
    except (TypeError, ValueError):
        return False
    return p is not None and p.default is inspect.Parameter.empty


def field_docs(cls: type) -> dict[str, str]:
    """A class's field documentation, `{field: text}`: each field's attribute docstring
    (the string right after it, as mkdocstrings shows it), else its entry
    ``- `field`: text`` in a class docstring's list, searched along the MRO (the
    command line's help comes from here)."""
    docs: dict[str, str] = {}
    for c in reversed(cls.__mro__):
        docs |= _own_docs(c)
    return docs


@functools.cache
def _own_docs(c: type) -> dict[str, str]:
    import ast
    import re
    import textwrap

    docs: dict[str, str] = {}
    for names, text in re.findall(r"^\s*- ((?:`\w+`(?:, )?)+): (.*(?:\n(?!\s*-|\s*$).*)*)",
                                  c.__dict__.get("__doc__") or "", re.M):  # fmt: skip
        docs |= dict.fromkeys(re.findall(r"`(\w+)`", names), " ".join(text.split()))
    try:
        body = ast.parse(textwrap.dedent(inspect.getsource(c))).body[0].body
    except (OSError, TypeError, SyntaxError, IndexError, AttributeError):
        return docs  # no source (a builtin, a compiled or interactive class)
    for a, b in zip(body, body[1:]):
        doc = (
            b.value.value if isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant) else None
        )
        if isinstance(a, ast.AnnAssign) and isinstance(a.target, ast.Name) and isinstance(doc, str):
            docs[a.target.id] = " ".join(doc.split())
    return docs
