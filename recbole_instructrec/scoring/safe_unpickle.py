"""Loading RecBole's own pickled checkpoints without executing arbitrary code.

RecBole saves its Config inside every ``.pth`` file, which torch's ``weights_only`` loader
refuses. Instead of trusting the pickle, we unpickle with an allowlist: tensors and storages,
numpy arrays and dtypes, RecBole's own classes (Config and its enums), and plain containers.
Any other global (``os.system``, ``builtins.eval``, functions of any module) stops the load
with an error naming it.
"""

import pickle

_ALLOWED = {
    "builtins": {
        "set",
        "frozenset",
        "slice",
        "range",
        "complex",
        "bytearray",
        "dict",
        "list",
        "tuple",
        "int",
        "float",
        "str",
        "bool",
        "object",
    },
    "collections": {"OrderedDict", "defaultdict"},
    "torch._utils": {"_rebuild_tensor_v2", "_rebuild_parameter", "_rebuild_tensor"},
    "torch": {"device", "Size", "dtype"},
    "numpy.core.multiarray": {"_reconstruct", "scalar"},
    "numpy._core.multiarray": {"_reconstruct", "scalar"},
    "numpy": {"ndarray", "dtype"},
    "_codecs": {"encode"},
    "yaml.loader": {"FullLoader"},  # Config keeps the class it parsed YAML with
}


class UnsafeCheckpointError(pickle.UnpicklingError):
    pass


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        allowed = name in _ALLOWED.get(module, ())
        if module == "torch" and name.endswith("Storage"):
            allowed = True
        if module == "torch" and name in ("float32", "float64", "int64", "int32", "bool"):
            allowed = True
        if module == "numpy.dtypes" and name.endswith("DType"):
            allowed = True
        if module.split(".")[0] == "recbole":
            found = super().find_class(module, name)
            if isinstance(found, type):  # RecBole's classes (Config, enums), never functions
                return found
        if not allowed:
            raise UnsafeCheckpointError(
                f"The checkpoint asks to load '{module}.{name}', which is not allowed in a "
                "RecBole checkpoint; refusing to unpickle it. Only load checkpoints you wrote."
            )
        return super().find_class(module, name)


class RestrictedPickle:
    """A ``pickle_module`` for ``torch.load`` that only knows the allowlisted globals."""

    Unpickler = _RestrictedUnpickler
    UnpicklingError = pickle.UnpicklingError

    @staticmethod
    def load(file, **kwargs):
        return _RestrictedUnpickler(file, **kwargs).load()
