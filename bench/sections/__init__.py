"""The five parts of the bench; each returns rows for the table and figures for the JSON."""
