"""What the analysis tools compute: FLOPs and complexity, benchmarks, window pictures,
the model-zoo table. Submodules are imported by name; this package imports nothing."""
