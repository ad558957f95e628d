"""What the tuner puts on the log while a job runs: the Ray Tune callback that publishes
TrialUpdated (trial_events.py), the job's terminal event (job_outcome.py), and the JobRun
they share with the tuner (job_run.py)."""
