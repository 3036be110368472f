"""Prediction records and their formats: Prediction, Candidate, surfaces (torch-free), JSON/CSV/GeoJSON/KML
writers, flat records, and safe text for terminals, spreadsheets and markup."""
