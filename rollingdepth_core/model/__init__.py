"""The depth model: checkpoint loading, cross-frame attention, speed options, the shared
noise, and latent encode/decode (single calls and batches sent to the host)."""
