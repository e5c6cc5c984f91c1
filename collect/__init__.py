"""Collecting answers: the respondents' web form and the durable inbox it writes to."""
