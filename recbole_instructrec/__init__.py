"""recbole-instructrec: InstructRec (Zhang et al. 2023) as a RecBole plugin.

Importing the package registers ``InstructRec`` and ``InstructRecTrainer`` with RecBole's own
lookups and applies the shims RecBole 1.2.1 needs on today's stack (see :mod:`.plugin`).
"""

from recbole_instructrec import plugin

plugin.install()

from recbole_instructrec.model import InstructRec  # noqa: E402
from recbole_instructrec.quick_start import run, run_recbole  # noqa: E402
from recbole_instructrec.trainer import InstructRecTrainer  # noqa: E402

__version__ = "0.1.0"
__all__ = ["InstructRec", "InstructRecTrainer", "run", "run_recbole", "__version__"]
