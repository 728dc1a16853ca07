"""Output files (plots and the HTML report come later)."""

from .files import OUTPUT_FILES, check_out_dir, to_json, write_outputs

__all__ = ["OUTPUT_FILES", "check_out_dir", "to_json", "write_outputs"]
