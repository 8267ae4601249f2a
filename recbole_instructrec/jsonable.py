"""Settings and configs as JSON values: the one conversion every JSON file we write uses."""


def jsonable(value):
    """``value`` with every container turned into a JSON list or object (keys as strings) and
    anything JSON cannot hold (a torch.device, an enum, a class) as its ``str``."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return str(value)
