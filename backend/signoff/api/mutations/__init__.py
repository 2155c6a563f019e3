"""GraphQL mutations, one module per small group; each parses input, calls one service."""
