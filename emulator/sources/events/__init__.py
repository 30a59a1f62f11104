"""Event shapes of the AWS services that invoke functions: one module per service, one source of truth each."""
