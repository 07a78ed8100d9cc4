"""Command-line interfaces of supcon_tf (absl flags live here, never in library code)."""
