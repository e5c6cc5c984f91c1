"""Ingest: files (CSV, XLSX, Parquet), other tools' exports and the web form's inbox,
checked row by row into the respondent store, or quarantined with a reason."""
