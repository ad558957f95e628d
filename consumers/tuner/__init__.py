"""The tuner: follows the log and runs a Ray Tune experiment for every started job.

service.py (the process: catch-up, follow, job slots), state.py (the pure fold of the log),
experiment.py (a job spec in Ray Tune's terms), runner.py (one experiment, on a worker
thread), trainable.py (what each trial runs), ray_processes.py (Ray's start, stop, orphans).
"""
