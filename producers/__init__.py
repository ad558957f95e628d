"""The tuner's Ray-side runtime: what produces the tuner's events while a job runs, and nothing else.

- job_run.py: the JobRun of each running job, the registry the Ray objects (callback, stopper,
  schedulers, searcher) look it up in, since Ray pickles them; DecisionMade goes out through it;
- trial_events.py: the Ray Tune callback that publishes TrialUpdated (and Ray's retry and
  failure decisions);
- baseline.py: the Ray task scoring the untuned base model, published as BaselineEvaluated;
- job_outcome.py: the job's terminal event (JobCompleted, JobFailed, JobCancelled);
- interrupted_trials.py: the TrialUpdated of trials a hand-over or a lost owner interrupted;
- error_text.py: an error as the one line these events carry.

The tuner process (consumers/tuner/) decides when a job runs; this package acts for it inside
the experiment.
"""
