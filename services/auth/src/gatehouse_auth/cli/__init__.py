"""Operator commands: signing-key management and administrator accounts."""
