"""Save and load a regulator with its config and history (Equinox leaves + JSON).

A saved run is a folder holding `regulator.eqx` (`eqx.tree_serialise_leaves`) and
`meta.json` (regulator type and shape, config, history, and the SHA-256 of the
leaves file, so truncation or a swapped file is caught). No pickle.
"""

import hashlib
import json
import math
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import equinox as eqx
import jax

from ._interrupt import held
from .config import from_config
from .regulator import AbstractRegulator
from .train import History

FORMAT = "diffgrn-regulator-v1"


class Saved(NamedTuple):
    regulator: AbstractRegulator
    config: dict
    history: History | None


def _shapes(regulator) -> list:
    leaves = jax.tree_util.tree_leaves(eqx.filter(regulator, eqx.is_array))
    return [list(x.shape) for x in leaves]


def _clean(obj):
    """JSON cannot hold NaN/inf: write them as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def folder_format(path: Path) -> str | None:
    """The `format` of the `meta.json` in folder `path` (None if none can be read)."""
    try:
        meta = json.loads((path / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    return meta.get("format") if isinstance(meta, dict) else None


def write_folder(path: Path, write: Callable[[Path], None], fmt: str, owner: str) -> Path:
    """Write the folder `path` whole: `write(tmp)` fills a new folder beside it, which
    then replaces `path` in one rename. An existing `path` is replaced only when it is
    empty or holds a `meta.json` of format `fmt` (what this writer wrote): a file, or
    a folder of anything else (a saved regulator, a run, your files), is refused. On
    any error (a full disk, an interrupt) the temporary folder goes and `path` is as
    it was."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{owner}: {path} is an existing file, not a folder")
    if path.is_dir() and any(path.iterdir()) and folder_format(path) != fmt:
        found = folder_format(path)
        what = f"a {found} folder" if found else "files it did not write"
        raise ValueError(
            f"{owner}: {path} holds {what}; it replaces only a {fmt} folder: choose another folder"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    old = path.parent / f".{path.name}.old-{os.getpid()}"
    with held():  # a Ctrl-C meanwhile is delivered once the folder is written (or not)
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            tmp.mkdir()
            write(tmp)
            if path.exists():
                os.replace(path, old)
            os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            if old.exists() and not path.exists():
                os.replace(old, path)
            raise
        shutil.rmtree(old, ignore_errors=True)
    return path


def save(
    path: str | os.PathLike,
    regulator: AbstractRegulator,
    config: dict | None = None,
    history: History | None = None,
) -> Path:
    """Write `regulator` (and optional config/history) to the folder `path`, whole
    (`write_folder`: it replaces only an earlier save)."""
    if not isinstance(regulator, AbstractRegulator):
        raise ValueError(
            f"diffgrn.save.regulator must be a diffgrn regulator; got {type(regulator).__name__}"
        )
    if config is not None and not isinstance(config, dict):
        raise ValueError(f"diffgrn.save.config must be a mapping or None; got {config!r}"[:200])
    if history is not None and not isinstance(history, History):
        raise ValueError(
            f"diffgrn.save.history must be a diffgrn History or None; got {type(history).__name__}"
        )

    def write(tmp: Path) -> None:
        leaves_file = tmp / "regulator.eqx"
        eqx.tree_serialise_leaves(leaves_file, regulator)
        meta = dict(
            format=FORMAT,
            regulator=regulator.config(),
            shapes=_shapes(regulator),
            sha256=hashlib.sha256(leaves_file.read_bytes()).hexdigest(),
            config=config or {},
            history=None if history is None else history.to_dict(),
        )
        (tmp / "meta.json").write_text(dumps(meta))

    return write_folder(Path(path), write, FORMAT, "diffgrn.save")


def write_text(path: "str | os.PathLike", text: str) -> Path:
    """Write a text file whole: a temporary file beside it, renamed into place."""
    path = Path(path)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    with held():
        try:
            tmp.write_text(text)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return path


def dumps(obj) -> str:
    """JSON text with NaN/inf written as null (never bare NaN, which is not JSON)."""
    return json.dumps(_clean(obj), indent=1, default=str, allow_nan=False)


def load(path: str | os.PathLike, expect: type | None = None) -> Saved:
    """Read a folder written by `save`; raises ValueError/FileNotFoundError with the
    reason when a file is missing, truncated or does not match. With `expect` (a
    regulator class, e.g. `MLPRegulator`), a regulator of another type is an error."""
    if expect is not None and not (
        isinstance(expect, type) and issubclass(expect, AbstractRegulator)
    ):
        raise ValueError(
            "diffgrn.load.expect must be a regulator class (e.g. diffgrn.MLPRegulator) "
            f"or None; got {expect!r}"
        )
    path = Path(path)
    meta_file, leaves_file = path / "meta.json", path / "regulator.eqx"
    for f in (meta_file, leaves_file):
        if not f.is_file():
            raise FileNotFoundError(
                f"diffgrn.load: {f} is missing (expected a folder written by diffgrn.save)"
            )
    try:
        meta = json.loads(meta_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"diffgrn.load: {meta_file} is not valid JSON (truncated?): {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"diffgrn.load: {meta_file} is not a {FORMAT} file")
    shapes = meta.get("shapes")
    if not isinstance(shapes, list):
        raise ValueError(
            f"diffgrn.load: {meta_file}: 'shapes' must be the list of the saved parameter "
            f"shapes; got {repr(shapes)[:80] if 'shapes' in meta else '(missing)'}"
        )
    if not isinstance(meta.get("config", {}), dict):
        raise ValueError(
            f"diffgrn.load: {meta_file}: 'config' must be a mapping; "
            f"got {repr(meta['config'])[:80]}"
        )
    history = None
    if meta.get("history") is not None:
        try:
            history = History.from_dict(meta["history"])
        except ValueError as e:
            raise ValueError(f"diffgrn.load: {meta_file}: 'history' is malformed ({e})") from None
    digest = hashlib.sha256(leaves_file.read_bytes()).hexdigest()
    if digest != meta.get("sha256"):
        raise ValueError(
            f"diffgrn.load: {leaves_file} does not match {meta_file} "
            "(truncated, or from another save)"
        )
    try:
        skeleton = from_config(meta["regulator"], AbstractRegulator)
    except (KeyError, TypeError, ValueError, ImportError, AttributeError) as e:
        raise ValueError(
            f"diffgrn.load: the 'regulator' field of {meta_file} is missing or malformed "
            f"({type(e).__name__}: {e}); got {meta.get('regulator')!r}"
        ) from None
    if expect is not None and not isinstance(skeleton, expect):
        raise ValueError(
            f"diffgrn.load: {path} holds a {type(skeleton).__name__}, not the expected "
            f"{expect.__name__}"
        )
    if _shapes(skeleton) != shapes:
        raise ValueError(
            f"diffgrn.load: {meta_file}: regulator config {meta['regulator']} does not "
            f"match the saved parameter shapes {shapes}"
        )
    try:
        regulator = eqx.tree_deserialise_leaves(leaves_file, skeleton)
    except Exception as e:  # equinox raises several types for bad files
        raise ValueError(f"diffgrn.load: cannot read {leaves_file}: {e}") from None
    return Saved(regulator, meta.get("config", {}), history)
