"""Training a RecBole model to early stopping, with a record of how and why it stopped.

A comparison is only as good as its baseline: a row must say how many epochs it ran, which
epoch validation picked and whether it stopped because validation stopped improving or because
it ran out of epochs or time. RecBole's trainer keeps none of this after ``fit``, so the
benchmark watches the trainer's own epoch methods on that one trainer object (RecBole itself is
not changed) and stops it at a wall-clock limit when the row has one.
"""

import time

EARLY_STOPPING = "early stopping"
EPOCH_LIMIT = "epoch limit"
TIME_LIMIT = "time limit"


class _TimeLimitReached(Exception):
    pass


def fit_to_convergence(trainer, train_data, valid_data, time_limit_s=None, show_progress=False):
    """``trainer.fit`` with its checkpoint saved at the best validation epoch; returns the
    convergence record: the validation curve, epochs run, best epoch and why it stopped."""
    curve = []
    start = time.time()
    train_epoch, valid_epoch = trainer._train_epoch, trainer._valid_epoch

    def watched_train_epoch(data, epoch_idx, *args, **kwargs):
        # Checked before an epoch starts, so the limit never cuts an epoch in half and the
        # best checkpoint so far stays the one validation chose; the first epoch always runs,
        # so there is a checkpoint to load.
        if curve and time_limit_s is not None and time.time() - start > time_limit_s:
            raise _TimeLimitReached
        loss = train_epoch(data, epoch_idx, *args, **kwargs)
        total = sum(loss) if isinstance(loss, tuple) else loss
        curve.append({"epoch": int(epoch_idx), "train_loss": round(float(total), 5)})
        return loss

    def watched_valid_epoch(*args, **kwargs):
        score, result = valid_epoch(*args, **kwargs)
        if curve:
            curve[-1]["valid_score"] = round(float(score), 5)
            # every metric, and each task's under valid_templates: why a point was chosen
            curve[-1]["valid_result"] = {k: round(float(v), 5) for k, v in result.items()}
        return score, result

    trainer._train_epoch, trainer._valid_epoch = watched_train_epoch, watched_valid_epoch
    stop_reason = None
    try:
        trainer.fit(train_data, valid_data, saved=True, show_progress=show_progress)
    except _TimeLimitReached:
        stop_reason = TIME_LIMIT
    finally:
        del trainer._train_epoch, trainer._valid_epoch  # back to the class's methods
    if stop_reason is None:
        stop_reason = EARLY_STOPPING if trainer.cur_step > trainer.stopping_step else EPOCH_LIMIT
    return convergence_record(curve, stop_reason, trainer, time.time() - start)


def convergence_record(curve, stop_reason, trainer, seconds):
    scored = [point for point in curve if "valid_score" in point]
    # RecBole keeps the later of equal scores (>=), so the best epoch is the last maximum.
    best = max(reversed(scored), key=lambda p: p["valid_score"]) if scored else None
    return {
        "epochs_run": len(curve),
        "best_epoch": best["epoch"] if best else None,
        "best_valid_score": best["valid_score"] if best else None,
        "valid_metric": trainer.config["valid_metric"],
        "stop_reason": stop_reason,
        "max_epochs": int(trainer.epochs),
        "stopping_step": int(trainer.stopping_step),
        "seconds": round(seconds, 1),
        "curve": curve,
    }
