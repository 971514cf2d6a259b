"""`Assessment`: what `assess` returns, the one number to report for a regulator.

A `dict` (so `a["mean"]`, `json.dumps(a)` and the run folders' `fresh_noise` work as
before) with attributes and a repr that says what each number is."""

import math
import warnings

__all__ = ["Assessment", "ReproducibilityBoundWarning", "reproducibility_bound"]


class ReproducibilityBoundWarning(UserWarning):
    """S_rep ≤ log₂ R / N is so small that U mostly measures S_pat (`assess`)."""


def reproducibility_bound(replicates: int, n_cells: int) -> float:
    """The largest S_rep R replicates of N cells can show: log₂ R / N bits per cell
    (R distinct patterns at most). Below about 0.2, U = S_pat − S_rep cannot tell a
    reproducible tissue from an irreproducible one."""
    return math.log2(replicates) / n_cells


def bound_note(replicates: int, n_cells: int) -> str | None:
    """The note `assess` warns with (and `diffgrn train` prints), or None."""
    bound = reproducibility_bound(replicates, n_cells)
    if bound >= 0.2:
        return None
    return (
        f"with R = {replicates} replicates and N = {n_cells} cells, S_rep <= log2(R) / N "
        f"= {bound:.3f} whatever the patterns, so U here mostly measures S_pat; raise the "
        "replicates (Objective(replicates=...), --replicates) or look at the fate maps "
        "to judge reproducibility"
    )


class Assessment(dict):
    """The hard utility of one regulator on `repeats` fresh noise draws of
    `replicates` replicates each: `mean` (the number to report), `std` (over draws),
    `sem` (standard error of the mean), `draws` (`a["values"]`: one per draw), the utility's two
    parts under their names (`s_pat`, `s_rep` for U = S_pat − S_rep; `agreement`,
    `exact_hits` for a `TargetPattern`; `parts` lists them) and, unless skipped,
    `resolution` (the same regulator at dt / refine on the same noise)."""

    def __missing__(self, key):
        parts = self.get("parts")
        if parts:
            raise KeyError(
                f"{key!r}: not in this assessment; its utility's parts are "
                f"{', '.join(map(repr, parts))} ({self.get('utility', 'utility')})"
            )
        raise KeyError(key)

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def draws(self) -> list:
        """The utility on each draw (`a["values"]`; `a.values` is the dict method)."""
        return self["values"]

    @property
    def sem(self) -> float:
        """Standard error of `mean` over the `repeats` draws."""
        return self["std"] / math.sqrt(self["repeats"])

    def __repr__(self) -> str:
        parts = self.get("parts") or ()
        text = ", ".join(f"{p} {self[p]:.4f}" for p in parts if p in self)
        what = self.get("label", "U")
        line = (
            f"Assessment({what} = {self['mean']:.4f} ± {self.sem:.4f} (mean ± s.e. over "
            f"{self['repeats']} fresh draws of {self['replicates']} replicates)"
            + (f"; {text}" if text else "")
        )
        res = self.get("resolution") or {}
        if "mean_fine" in res:
            verdict = "ARTEFACT of the time step" if res["artefact"] else "resolved"
            line += (
                f"; on other draws, at dt/{res['refine']}: {res['mean_fine']:.4f} vs "
                f"{res['mean_dt']:.4f} at dt = {res['dt']:g} ({verdict})"
            )
        return line + ")"

    def __str__(self) -> str:
        return repr(self)


def warn_bound(replicates: int, n_cells: int, stacklevel: int = 3) -> None:
    note = bound_note(replicates, n_cells)
    if note is not None:
        warnings.warn(note, ReproducibilityBoundWarning, stacklevel=stacklevel)
