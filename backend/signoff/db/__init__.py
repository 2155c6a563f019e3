"""Tables, the engine and the queries of signoff. Queries live here and nowhere else."""
