"""Where events go: JSONL file, stdout, MQTT (with its on-disk spool)."""
