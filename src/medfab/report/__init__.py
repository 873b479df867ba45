"""The HTML report of an evaluation: ``write_report(eval_dir, out)`` (see :mod:`medfab.report.html`)."""
