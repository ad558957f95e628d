"""Event producers outside the gateway: Ray Tune callbacks that publish trial and job events."""
