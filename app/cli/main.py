"""`tunix-tune`: one command for the local stack, the service processes and the read model."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import typer

from app.cli.audit import audit, why
from app.cli.jobs import jobs
from app.cli.models import models
from provisioning import kafka, postgres, processes
from provisioning.paths import settings

cli = typer.Typer(help="Tunix Tune: hyperparameter tuning for JAX/Tunix runs.", no_args_is_help=True)
services = typer.Typer(help="The local Kafka broker and PostgreSQL server.", no_args_is_help=True)
serve = typer.Typer(help="Run one service process in the foreground.", no_args_is_help=True)
cli.add_typer(services, name="services")
cli.add_typer(serve, name="serve")
cli.add_typer(jobs, name="jobs")
cli.add_typer(models, name="models")
cli.add_typer(audit, name="audit")
jobs.command("why")(why)


@services.command("up")
def services_up(
    kafka_brokers: int = typer.Option(None, "--kafka-brokers", min=1, max=9, envvar="TUNIX_KAFKA_BROKERS",
                                      help="Kafka nodes (3: replication factor 3, min.insync.replicas 2)"),
) -> None:
    """Install (first time) and start Kafka and PostgreSQL."""
    if kafka_brokers is not None and kafka_brokers != settings().kafka_brokers:
        os.environ["TUNIX_KAFKA_BROKERS"] = str(kafka_brokers)  # this command's settings, read again
        settings.cache_clear()
    # KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL point at servers we must not provision.
    if not settings().external_kafka:
        kafka.start()
        typer.echo(f"kafka      up at {kafka.bootstrap_servers()}")
    if not settings().external_database_url:
        postgres.start()
        typer.echo(f"postgres   up at {postgres.database_url()}")


@services.command("down")
def services_down() -> None:
    """Stop Kafka and PostgreSQL (their data stays)."""
    kafka.stop()
    postgres.stop()
    typer.echo("services stopped")


@services.command("status")
def services_status(as_json: bool = typer.Option(False, "--json")) -> None:
    _print_status(_service_status(), as_json)


def _service_status() -> list[dict]:
    return [
        {"name": "kafka", "pid": kafka.pid(), "healthy": kafka.is_running(),
         "address": kafka.bootstrap_servers()},
        {"name": "postgres", "pid": postgres.pid(), "healthy": postgres.is_running(),
         "address": postgres.database_url()},
    ]


def _process_status() -> list[dict]:
    return [
        {"name": name, "pid": (pid := processes.pid(name)), "healthy": bool(pid) and processes.healthy(name),
         "address": processes.probe_url(name)}
        for name in processes.COMPONENTS
    ]


def _print_status(components: list[dict], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps({"components": components}))
        return
    for c in components:
        state = "healthy" if c["healthy"] else ("running" if c["pid"] else "stopped")
        typer.echo(f"{c['name']:<10} {state:<8} pid={c['pid'] or '-':<8} {c['address'] or ''}")


def _run_module(module: str, *args: str) -> None:
    """Run a service module in this terminal, as its own process."""
    code = subprocess.call([sys.executable, "-m", module, *args])
    raise typer.Exit(code)


@serve.command("api")
def serve_api() -> None:
    """The HTTP gateway on TUNIX_API_HOST:TUNIX_API_PORT (default 127.0.0.1:8000)."""
    _run_module("app.main")


@serve.command("projector")
def serve_projector() -> None:
    """The projector: events topic -> PostgreSQL read model (migrates first)."""
    _run_module("consumers.projector")


@serve.command("tuner")
def serve_tuner() -> None:
    """The tuner: runs a Ray Tune experiment for every started job (RAY_ADDRESS for a cluster)."""
    _run_module("consumers.tuner")


@cli.command()
def migrate(schema: str = typer.Option(None, help="PostgreSQL schema (default: public)")) -> None:
    """Apply the read model's Alembic migrations."""
    _run_module("adapters.migrations", *(["--schema", schema] if schema else []))


@cli.command()
def replay(
    schema: str = typer.Option(None, help="Rebuild into this (new, empty) PostgreSQL schema"),
    database_url: str = typer.Option(None, help="Rebuild into this (empty) database instead"),
) -> None:
    """Rebuild the read model from offset 0 of the event log into an empty database or schema."""
    args = [*(["--schema", schema] if schema else []),
            *(["--database-url", database_url] if database_url else [])]
    _run_module("consumers.projector.replay", *args)


@cli.command()
def up() -> None:
    """Services plus the api, projector and tuner in the background (logs in .state/logs)."""
    services_up(kafka_brokers=None)
    if subprocess.call([sys.executable, "-m", "adapters.migrations"]) != 0:
        raise typer.Exit(1)
    for name in processes.COMPONENTS:
        typer.echo(f"{name:<10} pid={processes.start(name)} log={processes.log_file(name)}")
    processes.wait_for_api()
    typer.echo(f"api ready at {processes.api_url()}  (docs: {processes.api_url()}/docs)")


@cli.command()
def run(
    dataset: str = typer.Option(None, help="Dataset key, e.g. ungar_hcd-v1 (required unless --eval-only)"),
    model: str = typer.Option(..., help="Model id, e.g. tiny-gemma3; with --eval-only, a run folder instead"),
    set_: list[str] = typer.Option([], "--set", help="Hyperparameter NAME=VALUE (repeatable)"),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object and nothing else"),
    run_dir: str = typer.Option(None, help="Run folder (default artifacts/runs/<run_id>)"),
    eval_only: bool = typer.Option(
        False, "--eval-only", help="Train nothing: --model is a saved run folder (a run's, or a promoted "
        "model's artifacts/models/NAME/VERSION), evaluated again on its manifest's dataset; prints its metrics "
        "next to the recorded ones"),
) -> None:
    """One training run plus evaluation on JAX; prints the final metrics and the run folder.

    With --eval-only, no training: --model names a run folder, whose model is scored again on the eval
    split of the dataset its manifest names (exit 2 when the folder is missing or not a run folder).
    """
    from pathlib import Path

    if eval_only:
        for given, name in ((dataset, "--dataset"), (set_, "--set"), (run_dir, "--run-dir")):
            if given:
                raise typer.BadParameter("not used with --eval-only (the run folder's manifest names the dataset)",
                                         param_hint=f"'{name}'")
        from app.cli.run import eval_only_command

        eval_only_command(Path(model), as_json, settings())
        return
    if dataset is None:
        raise typer.BadParameter("required (unless --eval-only)", param_hint="'--dataset'")
    from app.cli.run import run_command

    run_command(dataset, model, set_, as_json, Path(run_dir) if run_dir else None, settings())


@cli.command()
def generate(
    prompt: str = typer.Argument(..., help="The user's message; the model's chat template is applied"),
    model: str = typer.Option(..., "--model", help="A base model id, a run folder, or a promoted NAME[:VERSION]"),
    max_tokens: int = typer.Option(64, "--max-tokens", help="Most tokens to generate (1 to 2048)"),
    temperature: float = typer.Option(0.0, "--temperature", help="0: greedy; above 0: sampled at it, with --seed"),
    seed: int = typer.Option(0, "--seed", help="The sampling seed (with --temperature above 0)"),
    as_json: bool = typer.Option(False, "--json", help="One JSON object: text, token_ids, prompt_token_ids, model"),
    system: str = typer.Option(None, "--system", help="A system message before the prompt (as a chat dataset's "
                               "examples carry one; the model's chat template must accept it)"),
) -> None:
    """Answer one prompt with a model: a base model (as jobs name it), a trial's run folder, or a
    promoted model; on this machine's CPU or GPU, nothing is sent to a service."""
    from app.cli.generate import generate_command

    generate_command(model, prompt, max_tokens, temperature, seed, as_json, settings(), system)


@cli.command()
def demo(
    spec: str = typer.Argument(None, help="Job spec JSON (default: LoRA on SmolLM2-135M-Instruct, "
                               "examples/smollm2_names_lora.json)"),
    api_url: str = typer.Option(None, "--api-url", envvar="TUNIX_API_URL", help="API base URL (default: the local stack)"),
    token: str = typer.Option(None, "--token", envvar="TUNIX_API_TOKEN", help="Bearer token, when the API needs one"),
    sweep_only: bool = typer.Option(False, "--sweep-only", help="Only the sweep: no follow-up job, no promotion"),
    tiny: bool = typer.Option(False, "--tiny", help="The built-in tiny model instead (examples/lr_sweep.json), then "
                              "a TPE job warm-started from it"),
) -> None:
    """On the running stack: a LoRA sweep of SmolLM2-135M-Instruct against its untuned baseline,
    followed live, then the best model promoted and the command that tries it (a SPEC given: only
    that job; --tiny: the built-in model's sweep and a warm-started TPE job)."""
    from pathlib import Path

    from app import (DEMO_MODEL_NAME, DEMO_PROMPT, DEMO_SPEC, DEMO_SYSTEM, EXAMPLE_SPEC, TINY_MODEL_NAME,
                     WARM_START_SPEC)
    from app.cli.demo import run_demo
    from app.cli.demo_model import DemoModelMissing, place_smollm2

    if spec:
        run_demo(Path(spec), api_url, token)
    elif tiny:
        run_demo(EXAMPLE_SPEC, api_url, token, follow_up=None if sweep_only else WARM_START_SPEC,
                 promote_as=None if sweep_only else TINY_MODEL_NAME)
    else:
        try:
            place_smollm2(settings().models_dir)
        except DemoModelMissing as exc:
            typer.secho(str(exc), err=True, fg="red")
            raise typer.Exit(1) from None
        run_demo(DEMO_SPEC, api_url, token, promote_as=None if sweep_only else DEMO_MODEL_NAME,
                 try_it=(DEMO_PROMPT, DEMO_SYSTEM))


@cli.command()
def down(services_too: bool = typer.Option(True, "--services/--keep-services")) -> None:
    """Stop the service processes (and, by default, Kafka and PostgreSQL)."""
    for name in processes.COMPONENTS:
        processes.stop(name)
    if services_too:
        services_down()
    else:
        typer.echo("processes stopped")


@cli.command()
def status(
    as_json: bool = typer.Option(False, "--json", help="One JSON object"),
    api_url: str = typer.Option(None, "--api-url", envvar="TUNIX_API_URL", help="API base URL (default: the local stack)"),
    token: str = typer.Option(None, "--token", envvar="TUNIX_API_TOKEN", help="Bearer token, when the API needs one"),
) -> None:
    """Each local component with its pid and health, then every live tuner (of any host) with
    its partitions and the jobs it runs."""
    from app.cli.client import ApiClient, ApiError

    components = _service_status() + _process_status()
    try:
        with ApiClient(api_url, token) as api:
            tuners, problem = api.get("/api/tuners"), None
    except ApiError as exc:
        tuners, problem = [], str(exc)
    if as_json:
        typer.echo(json.dumps({"components": components, "tuners": tuners, "tuners_error": problem}))
        return
    _print_status(components, False)
    typer.echo(f"tuners: {problem}" if problem else f"tuners: {len(tuners)} in the group")
    for t in tuners:
        jobs = ", ".join(t["jobs"]) or "no job"
        typer.echo(f"  {t['tuner_id']:<24} {t['host']:<16} partitions={t['partitions']}  runs: {jobs}")


if __name__ == "__main__":
    cli()
