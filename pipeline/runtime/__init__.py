"""Plumbing every stage shares: errors, seeding, device choice, data parallelism, resumable
checkpoints, the CPU allocator setting and the stage `main()`."""
