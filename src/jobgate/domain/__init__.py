"""Pure domain model: states, job specs, records and the parsers they need."""
