"""The test rig: dockerd in swarm mode, a local base image, Pebble. Stdlib only, so it runs before
anything is pip-installed. `python3 -m rig --help` lists the commands."""
