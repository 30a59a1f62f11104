"""The engine: a function's pool of execution environments, each environment and its parts (lifecycle, invocation
slot, runtime process, freeze control, shutdown, reports), the freezer backends, processes, memory and logs.

Nothing is imported here, so that loading one part (the watchdog needs only ``cgroupfs``) stays cheap."""
