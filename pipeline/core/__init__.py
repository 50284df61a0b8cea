"""Pure algorithms of the pipeline: numpy, torch and the standard library only; no I/O."""
