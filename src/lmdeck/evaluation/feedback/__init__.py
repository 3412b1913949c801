"""Feedback: thumbs, ratings and judgements that applications report about traces."""
