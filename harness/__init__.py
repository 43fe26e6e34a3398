"""Benchmark harness: run one offload strategy on one diffusion family and record a result row."""
