"""Run at interpreter start by ``recbole_instructrec.pth``: lets ray 2.6.3 load on numpy 2.

``recbole.quick_start`` imports ``ray.tune`` at module level, RecBole 1.2.1 caps ray at 2.6.3,
and that ray's tune loggers name ``np.bool8`` (removed in numpy 2) in their class bodies, so the
import fails with AttributeError. :mod:`recbole_instructrec.plugin` adds the alias, but only once
``recbole_instructrec`` is imported, and a script (or RecBole's own model tests) may well import
``recbole.quick_start`` first. This hook adds the alias just before ``ray`` is first imported,
whatever imports it. It imports nothing at start-up and removes itself once it has fired.

It is a separate top-level module because importing anything inside ``recbole_instructrec``
loads torch and RecBole, which every Python process of the environment would then pay for.
"""

import sys


class _BeforeRay:
    """A meta path finder that never finds anything: it only watches for ``ray``."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname == "ray":
            try:
                sys.meta_path.remove(self)
            except ValueError:
                pass
            _alias_numpy_bool8()
        return None


def _alias_numpy_bool8():
    import numpy as np

    # The version test comes first: on numpy 1.24-1.26 merely looking up bool8 warns.
    if int(np.__version__.split(".")[0]) >= 2 and not hasattr(np, "bool8"):
        np.bool8 = np.bool_


def install():
    if not any(isinstance(finder, _BeforeRay) for finder in sys.meta_path):
        # First in line: the path finder would find ray before a finder placed after it runs.
        sys.meta_path.insert(0, _BeforeRay())


install()
