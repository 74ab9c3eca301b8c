"""certbotless: ACME certificates for an nginx edge on Docker Swarm, stored in the swarm."""

__version__ = "0.1.0"
