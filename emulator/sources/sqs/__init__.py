"""SQS event source mappings: pollers that take batches from a queue and invoke a function, as Lambda runs them."""
