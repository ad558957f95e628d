"""The OpenAPI document with what this deployment accepts: the datasets it has, the metrics and
hyperparameter names the run pipeline knows. The contracts (schemas/) cannot know these; the
document should, so clients and schemathesis see the API as it behaves.

Its first build lists the datasets folder: the /openapi.json route builds it on the file-check
pool, within that pool's deadline (service/file_checks.py), so a slow or hung folder is a 503
for this document and never a frozen event loop."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from starlette.routing import Route

from service.file_checks import off_loop

from training.catalog import METRIC_NAMES
from training.datasets import available_datasets
from training.folders import Folders
from training.hyperparams import Hyperparameters


def install(app: FastAPI, folders: Folders) -> None:
    def openapi() -> dict:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, description=app.description,
                                   routes=app.routes)
            spec = document["components"]["schemas"]["JobSpec"]["properties"]
            spec["dataset_key"]["enum"] = available_datasets(folders.datasets)
            spec["dataset_key"]["description"] = "A dataset of this deployment (as of the first read of this document)."
            spec["metric_name"]["enum"] = list(METRIC_NAMES)
            for field in ("search_space", "fixed_params"):
                spec[field]["propertyNames"] = {"enum": list(Hyperparameters.names())}
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi
    fastapis = next(r for r in app.router.routes if isinstance(r, Route) and r.path == app.openapi_url)

    async def document_built_off_loop(request: Request):
        await off_loop(app.openapi)  # built (and kept) in a file-check thread ...
        return await fastapis.endpoint(request)  # ... so FastAPI's route only serves it

    app.router.routes.remove(fastapis)
    app.add_route(app.openapi_url, document_built_off_loop, include_in_schema=False)
