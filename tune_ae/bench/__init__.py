"""`python -m tune_ae.bench`: the report-style pipeline against tune_ae's loop (measure.py holds
the measurements; __main__.py is the command). Nothing is imported here, so that the command's
--help and usage errors answer before torch loads."""
