"""Floor 2: the Graph simulator used by the demo, the tests and the benchmarks."""
