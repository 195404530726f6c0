"""The `instore` command and the process orchestration used by the demo and the benchmarks."""
