"""Where responses and dead letters go: a Kafka publisher and an in-memory one."""
