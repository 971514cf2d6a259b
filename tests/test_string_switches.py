"""benchmarks/string_switches.py counts exactly the string-literal comparisons."""

from benchmarks.string_switches import in_cli_layer, string_switches

SOURCE = '''
def f(x, mode, kind, n):
    if mode == "grid":  # 1
        return {"grid": 1, "counter": 2}[mode]  # dict keys: not a comparison
    if "clip" != kind:  # 2
        label = f"{mode}-x"  # an f-string: not a comparison
    if x in ("open", "pinned"):  # 3
        pass
    if x in ("open", 1) or n == 3 or x is None or label == f"{kind}":  # none
        pass
    match mode:
        case "reflect" | "softclip":  # 4
            pass
        case 5:
            pass
    """mode == "docstring": not code"""
    return kind in {"a", "b"}  # 5
'''


def test_counts_the_string_comparisons_and_nothing_else():
    assert string_switches(SOURCE) == [3, 5, 7, 12, 17]


def test_counts_three_in_a_small_source():
    assert len(string_switches('a == "x"\nb != "y"\nc in ["u", "v"]\nd = {"k": f"{a}"}\n')) == 3


def test_the_cli_layer():
    assert in_cli_layer("cli.py") and in_cli_layer("cli/main.py") and in_cli_layer("options.py")
    assert not in_cli_layer("dynamics.py") and not in_cli_layer("climate.py")
