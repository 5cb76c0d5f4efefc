"""Email verification and password reset: one-time tokens sent by email, and their endpoints."""
