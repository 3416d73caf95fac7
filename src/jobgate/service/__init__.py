"""Business logic: the job service, the engine and authentication."""
