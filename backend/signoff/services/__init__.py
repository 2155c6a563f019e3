"""Use cases. One use case = one transaction: check, change, audit, publish, enqueue."""
