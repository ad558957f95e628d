"""The audit: why a trial ended as it did (why.py), the job's searcher run again offline over
the results the log recorded and compared with what the tuner decided (verify.py), another
ASHA scheduler replayed over the recorded learning curves (what_if.py), and which
hyperparameters mattered (importance.py). Imported by the gateway's routes (app/routes.py) and
the `tunix-tune audit` command (app/cli/audit.py); verify replays the searchers in
service/search/."""
