"""How the work runs on a machine: devices, batch sizes from free memory, batch loops that
halve on out-of-memory, asynchronous host copies and storage of large intermediates."""
