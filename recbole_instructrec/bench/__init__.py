from recbole_instructrec.bench.runner import DEFAULT_MODELS, run_benchmark

__all__ = ["DEFAULT_MODELS", "run_benchmark"]
