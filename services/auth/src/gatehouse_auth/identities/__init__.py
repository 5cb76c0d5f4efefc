"""Identities: email, password hash and roles of every account."""
