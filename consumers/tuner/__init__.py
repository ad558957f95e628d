"""The tuner: one member of the tuner group, running a Ray Tune experiment for every started
job on its partitions.

service.py (the process: group member, claims, hand-over, job slots), state.py (the pure fold
of the log), snapshots.py (the compacted state topic), experiment.py (a job spec in Ray Tune's
terms), schedulers.py (Ray's schedulers acting for one job: leases, hand-over), runner.py (one
experiment, on a worker thread), trainable.py (what each trial runs), ray_processes.py (Ray's
start, stop, orphans).
"""
