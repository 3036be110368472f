"""Folium maps of predictions, regions, evidence layers and cases (pure HTML; only the UI imports them)."""
