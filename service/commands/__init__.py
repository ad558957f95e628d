"""The command layer: what each command does and publishes (commands.py: create, start,
cancel; steering.py: adjust, extend, fork; promotion.py: promote a trial's model), the rules a
job spec must pass (validation.py) and the parent trials a warm-started job inherits
(warm_start.py). Each command checks its rules against the read model, raises a domain error
(service/errors.py) or publishes one event. Imported by the HTTP gateway (app/main.py,
app/routes.py), which maps these to HTTP; nothing here knows HTTP."""
