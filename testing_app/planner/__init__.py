"""The planner, a pure engine: which cells a trigger tests (engine), the rules that exclude
cells (rules), what it reads and returns (types), and how specs are read (evidence)."""
