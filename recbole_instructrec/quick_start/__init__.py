from recbole_instructrec.quick_start.run import run, run_recbole

__all__ = ["run", "run_recbole"]
