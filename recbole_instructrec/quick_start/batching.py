"""A bounded queue in front of :meth:`Recommender.recommend_many`: requests that arrive while
a scoring pass runs are scored together in the next one.

One worker thread owns the model. It takes every waiting request (up to ``max_batch``) and
scores them in one call, so their prompts share the scorer's packed forward passes. The queue
holds at most ``max_queue`` waiting requests; :meth:`Batcher.submit` refuses more with
:class:`QueueFull`, which says when to try again. Nothing waits unbounded.

Used without a web framework too::

    batcher = Batcher(recommender)
    future = batcher.submit({"user": "1", "instruction": "a comedy", "top_k": 10})
    result, timing = future.result()
"""

import collections
import math
import threading
import time
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass


class QueueFull(Exception):
    """The queue holds ``max_queue`` requests already; ``retry_after`` seconds is a fair wait."""

    def __init__(self, queued, retry_after):
        super().__init__(f"{queued} requests are waiting already")
        self.queued = queued
        self.retry_after = retry_after


@dataclass
class BatchTiming:
    queued_s: float  # from submit to the start of the scoring pass that served it
    scoring_s: float  # that pass, shared by the whole batch
    batch_size: int  # requests scored in that pass


@dataclass
class _Job:
    request: dict
    future: Future
    submitted: float


class Batcher:
    """See the module docstring. ``recommend_many``: a list of request dicts -> their results,
    in order (a :class:`Recommender`'s method of that name)."""

    def __init__(self, recommend_many, max_batch=16, max_queue=64):
        if int(max_batch) < 1 or int(max_queue) < 1:
            raise ValueError(f"max_batch={max_batch} and max_queue={max_queue} must be >= 1")
        self._recommend_many = recommend_many
        self.max_batch = int(max_batch)
        self.max_queue = int(max_queue)
        self._queue = collections.deque()
        self._cond = threading.Condition()
        self._holds = 0
        self._closed = False
        self.in_flight = 0
        self.served = 0  # requests answered (results and errors)
        self.batches = 0
        self.rejected = 0  # refused with QueueFull
        self._pass_s = None  # running mean of a scoring pass, for Retry-After
        self._thread = threading.Thread(target=self._run, name="instructrec-batcher", daemon=True)
        self._thread.start()

    @property
    def queued(self):
        return len(self._queue)

    def submit(self, request):
        """A Future of ``(result, BatchTiming)``; raises QueueFull when the queue is full."""
        with self._cond:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            if len(self._queue) >= self.max_queue:
                self.rejected += 1
                raise QueueFull(len(self._queue), self.retry_after())
            job = _Job(request, Future(), time.perf_counter())
            self._queue.append(job)
            self._cond.notify()
        return job.future

    def retry_after(self):
        """Whole seconds until the queue has likely drained by one batch's worth (at least 1)."""
        passes = math.ceil(len(self._queue) / self.max_batch) + (1 if self.in_flight else 0)
        return max(1, math.ceil(passes * (self._pass_s or 1.0)))

    @contextmanager
    def hold(self):
        """No new pass starts while held (the one running finishes): requests queue up and are
        scored together on release. For tests and maintenance."""
        with self._cond:
            self._holds += 1
        try:
            yield self
        finally:
            with self._cond:
                self._holds -= 1
                self._cond.notify_all()

    def close(self, timeout=None):
        """Serve what is queued, then stop the worker."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def _run(self):
        while True:
            with self._cond:
                while not self._queue and not self._closed or (self._holds and not self._closed):
                    self._cond.wait()
                if not self._queue:
                    return  # closed and drained
                taken = [self._queue.popleft() for _ in range(min(self.max_batch, self.queued))]
                # a request whose client went away (its future cancelled) is not scored
                batch = [job for job in taken if job.future.set_running_or_notify_cancel()]
                self.in_flight = len(batch)
            if batch:
                self._serve(batch)
            with self._cond:
                self.in_flight = 0
                self.served += len(batch)

    def _serve(self, batch):
        start = time.perf_counter()
        try:
            results = [(r, None) for r in self._recommend_many([job.request for job in batch])]
        except Exception:  # one bad request must not fail the others: each on its own
            results = []
            for job in batch:
                try:
                    results.append((self._recommend_many([job.request])[0], None))
                except Exception as error:  # noqa: BLE001 - handed to that request's caller
                    results.append((None, error))
        elapsed = time.perf_counter() - start
        self.batches += 1
        self._pass_s = elapsed if self._pass_s is None else 0.8 * self._pass_s + 0.2 * elapsed
        for job, (result, error) in zip(batch, results):
            if error is not None:
                job.future.set_exception(error)
            else:
                timing = BatchTiming(start - job.submitted, elapsed, len(batch))
                job.future.set_result((result, timing))
