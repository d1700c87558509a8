"""Deployment: the service files, the proxy configuration and the local production topology."""
