"""The runtime type checker the suite runs diffgrn under (see conftest.py): beartype with
PEP 484's numeric tower, so an int is a valid `float` as the typing spec says."""

from beartype import BeartypeConf, beartype

typechecker = beartype(conf=BeartypeConf(is_pep484_tower=True))
