"""The Ray Tune searchers of a job: its search space in Ray's terms and the searcher built from
its spec (searchers.py), wrapped so the job can steer how many trials run and how many at once
(steered_search.py). The tuner runs them live (consumers/tuner/experiment.py) and the audit
replays them offline (service/audit/verify.py), so they live in the service layer that both
import. Ray pickles them by module path: service/searchers.py, service/steered_search.py and
consumers/tuner/steering.py re-export them under the names older experiments were saved with."""
