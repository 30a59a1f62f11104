"""What invokes a function: each source builds the event, hands an ``Invocation`` to the function's pool and maps
the outcome back, knowing nothing of freezing. Today the Invoke API's engine side and asynchronous invocation."""
