"""The OAuth 2.0 token endpoint, refresh-token sessions, revocation and the JWKS."""
