"""The lead core: leads, their activity log and their lifecycle history."""
