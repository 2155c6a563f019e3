"""GraphQL and HTTP surface: thin resolvers that parse input, call one service and map results."""
