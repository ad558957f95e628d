"""The command layer: what each command does (commands.py), the rules a job must pass
(validation.py), the errors commands raise (errors.py) and the read model's queries
(queries.py). The HTTP gateway (app/) maps these to HTTP; nothing here knows HTTP."""
