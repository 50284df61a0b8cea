"""One module per DVC stage, each with `run(params) -> metrics` and `main()`."""
