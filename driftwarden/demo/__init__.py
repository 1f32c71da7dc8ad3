"""`driftwarden demo`: the monitoring loop on one machine, with embedded defaults."""
