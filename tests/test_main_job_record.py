"""benchmarks/main_job.py: the command it runs and records, and what it reads from a job's log."""

import pytest

from conftest import benchmark_script


def test_settings_given_to_the_script_are_passed_on_and_recorded():
    main_job = benchmark_script("main_job")
    command = main_job.job_command(["--train_steps_per_epoch=140", "--enable_amp=False"])
    assert command == [
        "run_recbole",
        "--model=InstructRec",
        "--dataset=ml-100k",
        "--train_steps_per_epoch=140",
        "--enable_amp=False",
    ]
    assert main_job.job_command([]) == main_job.COMMAND


@pytest.mark.parametrize("bad", ["--train_steps_per_epoch", "train_steps_per_epoch=140", "-x=1"])
def test_a_setting_not_written_as_key_value_is_refused_by_name(bad):
    with pytest.raises(ValueError, match=bad):
        benchmark_script("main_job").job_command([bad])


def test_the_log_gives_signals_results_and_wall_time():
    log = (
        "epoch 0: 1683 training signals (1683 in all)\n"
        "best valid : OrderedDict([('hit@1', np.float64(0.3)), ('ndcg@5', 0.61)])\n"
        "test result: OrderedDict([('hit@1', 0.3118), ('ndcg@5', np.float64(0.59))])\n"
        "\nreal\t16m58.123s\n"
    )
    record = benchmark_script("main_job").parse_log(log)
    assert record["training_signals"] == 1683
    assert record["test_result"] == {"hit@1": 0.3118, "ndcg@5": 0.59}
    assert record["best_valid"]["ndcg@5"] == 0.61
    assert record["wall_seconds"] == pytest.approx(16 * 60 + 58.123)
