"""The paper's setting on one GPU: the whole of ml-100k and of amazon-games, uni9, one stored
candidate set per dataset, baselines trained to early stopping, InstructRec trained on every
training interaction for one epoch.

    python benchmarks/paper_setting.py --amazon-path ../shared/datasets           # one GPU
    python benchmarks/paper_setting.py --datasets tiny --amazon-path dataset \\
        --llm-path <tiny model> --steps 2 --baseline-epochs 2 --out /tmp/paper    # CPU rehearsal

Rows, on each dataset:

* ``SASRec`` and ``BERT4Rec``: RecBole's models, early stopping on validation NDCG@5;
* ``InstructRec-LoRA-list``: text LoRA in the running-list layout (``seq-list``), one epoch =
  every training interaction a positive once (``train_steps_per_epoch: ~``), with the
  listwise loss at every position (``train_negatives: 0`` in ``LLM_ON_GPU`` trains the paper's
  generation loss alone, which lost 16.6 points HR@1 to it on the amazon-games sample at the
  main job's budget);
* ``InstructRec-Hybrid-learned-list``: the same with a learned item table (the best hybrid on
  amazon-games), the hybrid that needs no other row's checkpoint.

The LLM rows use bfloat16 weights and large packed batches (``--batch`` RecBole rows of about 11
items each per step, ``max_batch_tokens`` to match) so that one H100-class GPU is kept busy. Each
dataset writes its own ``bench-<tag>-<dataset>.*`` files (the candidates stored beside them);
the commit, machine (GPU named) and command are in each file.

Time plan (estimates from measured rates, to be replaced by this script's own timings): the
shared-prefix scorer ran 4,586 candidates/s at 100 candidates per user on an H100 in float32
(``benchmarks/experiments/scoring-speed/results/scoring_speed.md`` notes where that figure comes from), so evaluating
50,546 users x 10 candidates takes a few minutes at most; training one running-list epoch of
amazon-games is about 50,000 windows of about 550 tokens (fewer without negatives: on ml-100k
a signal costs 19 tokens instead of 68, ``benchmarks/experiments/training-speed/results/training_speed.md``), which at
SmolLM2-135M's ~6 x 135M FLOPs per token is about 2e16 FLOPs, minutes at a
modest share of the GPU's bf16 rate. Every row records its own train and eval seconds.
"""

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LLM_ON_GPU = {
    "eval_template": "seq-list",
    "llm_dtype": "bfloat16",
    "epochs": 1,
    "train_steps_per_epoch": None,
    # a GPU affords negatives at every position of the epoch (the CPU default keeps them at 2)
    "train_negative_positions": "all",
    "valid_max_users": 1000,
    "eval_batch_size": 2500,
}
ROWS = {
    "SASRec": {},
    "BERT4Rec": {},
    "InstructRec-LoRA-list": {},
    "InstructRec-Hybrid-learned-list": {},
}


def row_settings(args):
    """``--model-config``-style settings of every row for this run."""
    llm = dict(LLM_ON_GPU, train_batch_size=args.batch, max_batch_tokens=args.batch * 1024)
    if args.steps:
        llm["train_steps_per_epoch"] = args.steps
    if args.llm_path:
        llm["llm_path"] = os.path.abspath(args.llm_path)
    if args.llm_dtype:
        llm["llm_dtype"] = args.llm_dtype
    baseline = {"epochs": args.baseline_epochs} if args.baseline_epochs else {}
    return {
        name: dict(llm if name.startswith("InstructRec") else baseline, **extra)
        for name, extra in ROWS.items()
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="ml-100k,amazon-games")
    parser.add_argument(
        "--amazon-path", default="../shared/datasets", help="folder of amazon-games"
    )
    parser.add_argument("--batch", type=int, default=64, help="RecBole rows per training step")
    parser.add_argument("--steps", type=int, default=None, help="cap on steps (rehearsal)")
    parser.add_argument("--baseline-epochs", type=int, default=None, help="cap (rehearsal)")
    parser.add_argument("--llm-path", default=None, help="default: the embedded SmolLM2")
    parser.add_argument("--llm-dtype", default=None, help="default bfloat16; float32 on CPU")
    parser.add_argument(
        "--out", default=os.path.join(ROOT, "benchmarks", "experiments", "paper-setting", "results")
    )
    parser.add_argument("--tag", default="paper-setting")
    args = parser.parse_args(argv)
    command = "python benchmarks/paper_setting.py " + " ".join(argv or sys.argv[1:])
    sys.argv = sys.argv[:1]  # RecBole reads the command line as settings

    import recbole_instructrec  # noqa: F401  (registers the model)
    from recbole_instructrec.bench import run_benchmark

    records = []
    for dataset in [d for d in args.datasets.split(",") if d]:
        records += run_benchmark(
            datasets=[dataset],
            models=list(ROWS),
            data_path=None if dataset == "ml-100k" else args.amazon_path,
            model_settings=row_settings(args),
            out_dir=args.out,
            tag=f"{args.tag}-{dataset}",
            command=command,
        )
    return records


if __name__ == "__main__":
    main()
