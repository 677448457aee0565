"""End-to-end acceptance scenarios: all five services in-process, real Postgres, Kafka, SMTP."""
