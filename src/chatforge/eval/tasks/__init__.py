"""Benchmarks scored through the harness: each module reads its official file layout (and the
built-in set the corpus writes in that layout) and returns a `harness.TaskResult`."""
