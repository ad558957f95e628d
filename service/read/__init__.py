"""The read side: the projector's rules that turn each event into read-model rows
(projection.py), the queries the API answers from the PostgreSQL read model (queries.py), a
job as it was at an earlier point of its log (as_of.py), and the API's other reads: the base
models a job can name (models.py) and the live tuner group with the jobs each owns
(tuners.py). Imported by the gateway (app/), the projector (consumers/projector/read_model.py)
and the tuner, which applies the same status rules (consumers/tuner/state.py)."""
