"""Rank 0's word in a distributed run (RecBole's ``--nproc`` launcher): a leaf module, so the
plugin's hooks and our trainer can both use it without importing each other."""


def rank0_value(config, value):
    """``value`` as rank 0 has it, on every rank of a distributed run (else ``value``)."""
    if config["single_spec"]:
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def wait_for_rank0(config):
    """In a distributed run, wait until rank 0 is here too (e.g. done writing a checkpoint)."""
    if not config["single_spec"]:
        import torch.distributed as dist

        dist.barrier()
