"""Slurm clusters: jobs handed to a real Slurm, through its commands (transport "cli")."""
