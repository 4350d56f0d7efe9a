"""The conformance check's parts: shared reports and comparisons, the checks every kind gets, and
one module per plugin kind or group of kinds. ``engine.loading.conformance`` runs them."""
