"""Family-agnostic torch plumbing shared by every model family: the batch driver, device choice,
Grad-CAM helpers. Written once here so that each family package holds only what is its own."""
