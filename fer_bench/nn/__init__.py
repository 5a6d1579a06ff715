"""Reusable network blocks and losses shared by the paper methods."""
