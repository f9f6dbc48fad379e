"""Locust load test for the Online Boutique canary (loadtest/boutique.py)."""
