"""The service layer, between the entry points (the HTTP gateway in app/, the Kafka consumers
in consumers/) and what they stand on (adapters/, schemas/, training/). It holds four things,
one package each: commands/ (what each command does and the rules it checks), read/ (the read
model's projection rules and queries, and the other reads the API answers), audit/ (why a
trial ended as it did, verify, what-if and parameter importance) and search/ (the Ray Tune
searchers the tuner runs and the audit replays). errors.py (why a command or query was
refused) and file_checks.py (server file reads off the event loop) sit at the root because
several packages share them. service/searchers.py and service/steered_search.py are shims
for pickled experiments. Nothing here knows HTTP, and nothing here imports consumers/."""
