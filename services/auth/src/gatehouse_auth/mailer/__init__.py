"""Outgoing email: the outbox in MongoDB, the templates, and the worker that sends over SMTP."""
