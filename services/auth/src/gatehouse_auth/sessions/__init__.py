"""Sessions: a user's logins (refresh-token families), listing and ending them, password change."""
