"""Benchmark suites, the runner and the versioned leaderboards."""
