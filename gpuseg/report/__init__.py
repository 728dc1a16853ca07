"""Output files, plots and the self-contained HTML report."""

from .files import OUTPUT_DIRS, OUTPUT_FILES, check_out_dir, to_json, write_outputs

__all__ = ["OUTPUT_DIRS", "OUTPUT_FILES", "check_out_dir", "to_json", "write_outputs"]
