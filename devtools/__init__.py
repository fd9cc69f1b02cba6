"""Developer tooling: preparing the data the stack needs, and running the three processes."""
