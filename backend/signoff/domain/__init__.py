"""Pure rules of signoff: no framework, database or queue imports live here."""
