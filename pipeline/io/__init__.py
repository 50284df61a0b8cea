"""Files in and out: Parquet tables with their schemas, embedding tables, images and their
download cache, plots and the evaluation report."""
