"""Schedules: EventBridge schedule expressions and the timers that deliver them as asynchronous invocations."""
