"""The experiment editor: forms generated from the plugins' declared parameters."""
