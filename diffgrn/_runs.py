"""Run folders a researcher can trust: validated before any compute, written whole
(a temporary folder renamed into place), one run at a time, with the record needed to
reproduce them (seed, command line, package versions)."""

import contextlib
import importlib.metadata
import os
import shutil
import sys
from pathlib import Path

PACKAGES = ("diffgrn", "jax", "jaxlib", "equinox", "diffrax", "optax")


def versions() -> dict:
    """Installed versions of diffgrn and the libraries its numbers depend on."""
    from . import __version__

    out = {"diffgrn": __version__}
    for name in PACKAGES[1:]:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    out["python"] = sys.version.split()[0]
    return out


def check_out(target: Path, overwrite: bool, flag: str = "--out") -> None:
    """Raise ValueError unless `target` can become a run folder: not a file, no file
    above it, in a writable place, and (unless `overwrite`) not an existing non-empty
    folder."""
    if str(target) in ("", "."):
        raise ValueError(f"{flag} must name a folder for the run; got {str(target)!r}")
    if target.exists() and not target.is_dir():
        raise ValueError(f"{flag} {target} is an existing file, not a folder")
    parent = target.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"{flag} {target}: {parent} is a file, so no folder can go below it")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {target}: {parent} is not writable")
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        raise ValueError(
            f"{flag} {target} already holds files (an earlier run?); choose another "
            "folder or pass --overwrite to replace it"
        )


class RunFolder(contextlib.AbstractContextManager):
    """Write a run into `self.tmp` (beside `target`), then `commit()` renames it into
    place, replacing an old `target` whole. A lock file beside `target` refuses a second
    concurrent run into it; leaving the block without `commit()` removes the temporary
    folder and leaves `target` untouched."""

    def __init__(self, target: Path, overwrite: bool = False, flag: str = "--out"):
        check_out(target, overwrite, flag)
        self.target, self.flag = target, flag
        name = target.name
        self.lock = target.parent / f".{name}.lock"
        self.tmp = target.parent / f".{name}.tmp-{os.getpid()}"
        self.committed = False
        self.locked = False

    def __enter__(self):
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self._acquire()
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        self.tmp.mkdir()
        return self

    def _acquire(self):
        for _ in range(2):
            try:
                fd = os.open(self.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                if _stale(self.lock):
                    self.lock.unlink(missing_ok=True)
                    continue
                raise ValueError(
                    f"{self.flag} {self.target}: another run is writing there (lock file "
                    f"{self.lock}; delete it if no diffgrn process is running)"
                ) from None
            with os.fdopen(fd, "w") as f:
                f.write(str(os.getpid()))
            self.locked = True
            return

    def commit(self) -> Path:
        old = None
        if self.target.exists():
            old = self.target.parent / f".{self.target.name}.old-{os.getpid()}"
            os.replace(self.target, old)
        os.replace(self.tmp, self.target)
        self.committed = True
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.target

    def __exit__(self, *exc):
        if not self.committed and self.tmp.exists():
            shutil.rmtree(self.tmp, ignore_errors=True)
        if self.locked:
            self.lock.unlink(missing_ok=True)
        return False


def _stale(lock: Path) -> bool:
    """A lock whose process is gone (killed without cleaning up)."""
    try:
        pid = int(lock.read_text().strip() or "0")
    except (OSError, ValueError):
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
