"""The run pipeline a trial executes: dataset -> Tunix SFT run on JAX -> evaluation -> artifacts.

Pure: no Kafka, no database, no HTTP. `training.run.run_pipeline` is the entry point;
`training.validate.validate_job` is what the API calls before accepting a job. Importing this
package is cheap: JAX and Tunix load only when a run starts.
"""
