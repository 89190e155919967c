"""Benchmarks of encore.concurrent, side by side with the standard library.

1. Executor throughput: submit N tiny jobs, then collect every result, with
   :class:`EnhancedThreadPoolExecutor` and with the standard
   :class:`concurrent.futures.ThreadPoolExecutor` using the same number of
   workers.  Runs alternate between the two; the median of each is reported,
   with the ratio encore / stdlib (target: at most 1.3).
2. Asynchronizer burst: N submissions in a tight loop to an
   :class:`Asynchronizer` (on a one-worker pool).  Reports the cost of one
   ``submit`` (target: under 5 microseconds) next to the cost of a plain
   ``executor.submit``, and how many jobs actually ran (target: O(1) per
   burst, not O(N)), for a job that does nothing and for one that takes
   1 ms.

Run with ``python benchmarks/bench_concurrent.py [--jobs N] [--workers W]
[--repeat R]``.
"""
import argparse
import concurrent.futures
import statistics
import sys
import threading
import time

from encore.concurrent.futures.asynchronizer import Asynchronizer
from encore.concurrent.futures.enhanced_thread_pool_executor import EnhancedThreadPoolExecutor


def tiny_job(x):
    return x


def executor_throughput(executor_class, jobs, workers):
    executor = executor_class(workers)
    try:
        # Start the workers before timing.
        for future in [executor.submit(tiny_job, i) for i in range(workers * 4)]:
            future.result()
        start = time.perf_counter()
        futures = [executor.submit(tiny_job, i) for i in range(jobs)]
        for future in futures:
            future.result()
        return time.perf_counter() - start
    finally:
        executor.shutdown(wait=True)


def bench_executors(jobs, workers, repeat):
    print("Executor throughput: {} tiny jobs, {} workers, median of {} runs".format(jobs, workers, repeat))
    timings = {"stdlib ThreadPoolExecutor": [], "EnhancedThreadPoolExecutor": []}
    for _ in range(repeat):
        timings["stdlib ThreadPoolExecutor"].append(
            executor_throughput(concurrent.futures.ThreadPoolExecutor, jobs, workers)
        )
        timings["EnhancedThreadPoolExecutor"].append(
            executor_throughput(EnhancedThreadPoolExecutor, jobs, workers)
        )
    medians = {name: statistics.median(values) for name, values in timings.items()}
    for name, seconds in medians.items():
        print("  {:<28} {:7.3f} s  {:9.0f} jobs/s".format(name, seconds, jobs / seconds))
    ratio = medians["EnhancedThreadPoolExecutor"] / medians["stdlib ThreadPoolExecutor"]
    print("  ratio encore / stdlib (time): {:.2f}  (target <= 1.30)".format(ratio))
    return ratio


def burst(jobs, job_seconds):
    """Submit ``jobs`` times in a tight loop; return (s per submit, jobs run)."""
    executor = EnhancedThreadPoolExecutor(1)
    ran = [0]

    def job(i):
        ran[0] += 1
        if job_seconds:
            time.sleep(job_seconds)

    asynchronizer = Asynchronizer(executor)
    try:
        submit = asynchronizer.submit
        start = time.perf_counter()
        for i in range(jobs):
            submit(job, i)
        elapsed = time.perf_counter() - start
        asynchronizer.wait()
        return elapsed / jobs, ran[0]
    finally:
        executor.shutdown(wait=True)


def plain_submit_cost(jobs):
    executor = EnhancedThreadPoolExecutor(1)
    try:
        gate = threading.Event()
        executor.submit(gate.wait)  # keep the worker out of the way
        submit = executor.submit
        start = time.perf_counter()
        for i in range(jobs):
            submit(tiny_job, i)
        elapsed = time.perf_counter() - start
        gate.set()
        return elapsed / jobs
    finally:
        executor.shutdown(wait=True)


def bench_asynchronizer(jobs, repeat):
    print("Asynchronizer burst: {} submissions, median of {} runs".format(jobs, repeat))
    plain = statistics.median(plain_submit_cost(jobs) for _ in range(repeat))
    print("  EnhancedThreadPoolExecutor.submit (reference): {:6.2f} us/submit".format(plain * 1e6))
    worst = 0.0
    for label, job_seconds in (("no-op job", 0.0), ("1 ms job", 0.001)):
        results = [burst(jobs, job_seconds) for _ in range(repeat)]
        per_submit = statistics.median(r[0] for r in results)
        runs = [r[1] for r in results]
        worst = max(worst, per_submit)
        print(
            "  Asynchronizer.submit, {:<9}: {:6.2f} us/submit (target < 5), "
            "ratio to executor.submit {:.2f}, jobs run per burst: {} (of {})".format(
                label, per_submit * 1e6, per_submit / plain, runs, jobs
            )
        )
    return worst


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args(argv)
    print("Python", sys.version.split()[0])
    bench_executors(options.jobs, options.workers, options.repeat)
    bench_executors(options.jobs, 1, options.repeat)
    bench_asynchronizer(options.jobs, options.repeat)


if __name__ == "__main__":
    main()
