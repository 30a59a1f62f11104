"""Event shapes, one module per AWS service: plain functions that build the event a function receives."""
