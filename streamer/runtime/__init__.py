"""The only place that knows about threads and processes: queues, the pipeline, the wiring that builds it."""
