"""FastAPI building blocks shared by the five services."""
