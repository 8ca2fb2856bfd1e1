"""Predictions back on the map: chips' predictions stitched into one COG per scene."""
