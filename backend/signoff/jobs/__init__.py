"""Background work run by arq workers; every job acts through the service layer."""
