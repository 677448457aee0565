"""Kafka adapters: producer/consumer factories, headers, topic administration."""
