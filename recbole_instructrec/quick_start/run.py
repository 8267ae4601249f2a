"""``run`` and ``run_recbole``: RecBole's quick start, for any RecBole model, without ray.

They mirror ``recbole.quick_start.run`` / ``run_recbole`` (same arguments, same result dict).
``import recbole.quick_start`` imports ray 2.6.3, which is slow to load and only works on
today's stack thanks to setup.py's setuptools pin and our start-up hook (see
:mod:`recbole_instructrec.plugin`), so we assemble the same pipeline from RecBole's ray-free
modules. The only behavioural difference: FLOPs are not counted for LLM models, because
``get_flops`` deep-copies the model. One addition: a ``resume_checkpoint`` setting continues a
killed run (``trainer.resume_checkpoint``).
"""

import sys
from collections.abc import MutableMapping
from logging import getLogger

import torch.distributed as dist
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.data.transform import construct_transform
from recbole.utils import (
    get_environment,
    get_flops,
    get_model,
    get_trainer,
    init_logger,
    init_seed,
    set_color,
)


def run(
    model,
    dataset,
    config_file_list=None,
    config_dict=None,
    saved=True,
    nproc=1,
    world_size=-1,
    ip="localhost",
    port="5678",
    group_offset=0,
):
    """One process, or ``nproc`` processes of a torch.distributed group (RecBole's launcher)."""
    if nproc == 1 and world_size <= 0:
        return run_recbole(model, dataset, config_file_list, config_dict, saved)
    import torch.multiprocessing as mp

    world_size = nproc if world_size == -1 else world_size
    queue = mp.get_context("spawn").SimpleQueue()
    config_dict = dict(config_dict or {})
    config_dict.update(
        {"world_size": world_size, "ip": ip, "port": port, "nproc": nproc, "offset": group_offset}
    )
    kwargs = {"config_dict": config_dict, "queue": queue, "saved": saved}
    mp.spawn(run_recboles, args=(model, dataset, config_file_list, kwargs), nprocs=nproc, join=True)
    return None if queue.empty() else queue.get()


def run_recbole(
    model=None, dataset=None, config_file_list=None, config_dict=None, saved=True, queue=None
):
    """Train and test ``model`` on ``dataset``; returns RecBole's result dict."""
    config = Config(
        model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict
    )
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logger = getLogger()
    logger.info(sys.argv)
    logger.info(config)

    dataset = create_dataset(config)
    logger.info(dataset)
    train_data, valid_data, test_data = data_preparation(config, dataset)

    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    logger.info(model)
    if getattr(model, "count_flops", True):
        transform = construct_transform(config)
        flops = get_flops(model, dataset, config["device"], logger, transform)
        logger.info(set_color("FLOPs", "blue") + f": {flops}")

    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    if config["resume_checkpoint"]:
        trainer.resume_checkpoint(config["resume_checkpoint"])
    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, saved=saved, show_progress=config["show_progress"]
    )
    test_result = trainer.evaluate(
        test_data, load_best_model=saved, show_progress=config["show_progress"]
    )

    environment_tb = get_environment(config)
    logger.info("The running environment of this training is as follows:\n" + environment_tb.draw())
    logger.info(set_color("best valid ", "yellow") + f": {best_valid_result}")
    logger.info(set_color("test result", "yellow") + f": {test_result}")
    result = {
        "best_valid_score": best_valid_score,
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": best_valid_result,
        "test_result": test_result,
    }
    if getattr(model, "fusion_model", None):
        result["fusion_weight"] = model.fusion_weight  # fitted on validation unless given
    if not config["single_spec"]:
        dist.destroy_process_group()
    if config["local_rank"] == 0 and queue is not None:
        queue.put(result)
    return result


def run_recboles(rank, *args):
    """Entry point of each spawned process."""
    kwargs = args[-1]
    if not isinstance(kwargs, MutableMapping):
        raise ValueError(f"The last argument of run_recboles must be a dict, got {type(kwargs)}")
    kwargs["config_dict"] = dict(kwargs.get("config_dict", {}), local_rank=rank)
    run_recbole(*args[:3], **kwargs)
